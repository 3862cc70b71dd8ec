/**
 * The few style rules uPlot's layers need (its canvas and the overlay that takes the mouse
 * must stack, the selection must show), and the chart's own, put in the page once. Why here:
 * the charts ship with their look, whatever stylesheet the page that uses them has; colours
 * follow the page's theme through `currentColor` and CSS variables.
 */
const CSS = `
.metric-chart { margin: 0 0 1rem; }
.metric-chart figcaption { display: flex; flex-wrap: wrap; gap: .75rem; align-items: center; margin-bottom: .25rem; }
.metric-chart .chart-controls { display: inline-flex; gap: .6rem; align-items: center; margin-left: auto; font-size: .85em; }
.chart-box { width: 100%; min-height: 40px; }
.uplot { position: relative; font-size: 12px; line-height: 1.4; }
.uplot .u-wrap { position: relative; user-select: none; }
.uplot .u-over, .uplot .u-under { position: absolute; }
.uplot canvas { display: block; position: relative; width: 100%; height: 100%; }
.uplot .u-axis { position: absolute; }
.uplot .u-select { background: rgba(37, 99, 235, .15); position: absolute; pointer-events: none; }
.uplot .u-cursor-x, .uplot .u-cursor-y { position: absolute; left: 0; top: 0; pointer-events: none; will-change: transform; }
.uplot .u-cursor-x { height: 100%; border-right: 1px dashed #607D8B; }
.uplot .u-cursor-y { width: 100%; border-bottom: 1px dashed #607D8B; }
.uplot .u-cursor-pt { position: absolute; top: 0; left: 0; border-radius: 50%; border: 0 solid; pointer-events: none; will-change: transform; background-clip: padding-box !important; }
.uplot .u-hz .u-cursor-x, .uplot .u-hz .u-cursor-y { }
.uplot .u-legend { font-size: 12px; margin: .25rem auto 0; text-align: center; }
.uplot .u-legend .u-series { display: inline-block; margin: 0 .5rem; cursor: pointer; }
.uplot .u-legend th { font-weight: 600; padding-right: .25rem; }
.uplot .u-legend .u-marker { width: 1em; height: 3px; margin-right: 4px; display: inline-block; vertical-align: middle; }
.uplot .u-legend .u-off > * { opacity: .3; }
.uplot .u-off { opacity: .3; }
`;

let installed = false;

export function installChartStyle(): void {
  if (installed || typeof document === 'undefined') return;
  installed = true;
  const style = document.createElement('style');
  style.dataset.owner = 'runyard-charts';
  style.textContent = CSS;
  document.head.appendChild(style);
}
