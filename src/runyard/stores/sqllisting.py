"""Listing runs in the SQL stores: ``list_runs``, ``count_runs`` and ``folder_counts``.

All three read the same filtered query (``sqlschema.filter_query``), so a page, its count and
its folder tree always agree. The created order (the default) reads the id index and pages by
keyset, as fast as ever; the other orders are in ``sqlorder``. Mixed into ``SqlStore``, which
gives the dialect and transactions.
"""

from __future__ import annotations

from abc import abstractmethod
from contextlib import AbstractContextManager

from runyard.model import RunRecord
from runyard.stores.base import RunFilter, check_after
from runyard.stores.ordering import CREATED, check_listing, page_by
from runyard.stores.sqlorder import full_select, ordered_ids, ordering, rows_of
from runyard.stores.sqlschema import RUN_FIELDS, Dialect, Tx, filter_query, row_run


class SqlListing:
    """Mixed into ``SqlStore``."""

    dialect: Dialect

    @abstractmethod
    def _transaction(self, write: bool) -> AbstractContextManager[Tx]: ...

    def list_runs(
        self,
        filter: RunFilter | None = None,
        *,
        newest_first: bool = True,
        limit: int | None = None,
        offset: int = 0,
        after: str | None = None,
        order_by: str = "created",
    ) -> list[RunRecord]:
        order = check_listing(order_by, after)
        if order != CREATED:
            return self._sorted(filter or RunFilter(), order, newest_first, limit, offset)
        q = filter_query(filter or RunFilter(), self.dialect)
        direction = "DESC" if newest_first else "ASC"
        cut = self.dialect.no_limit if limit is None else "?"
        where, params = q.where, q.params
        if after is not None:  # keyset paging: a range of the index the order reads
            where = f"{where} AND {q.order} {'<' if newest_first else '>'} ?"
            params = (*params, check_after(after))
        params = (*params, *(() if limit is None else (limit,)), offset)
        sql = f"SELECT {RUN_FIELDS} FROM {q.source} WHERE {where}"
        with self._transaction(False) as tx:
            rows = tx.all(f"{sql} ORDER BY {q.order} {direction} LIMIT {cut} OFFSET ?", params)
        return [row_run(row, self.dialect) for row in rows]

    def _sorted(self, wanted: RunFilter, order_by: str, newest_first: bool,
                limit: int | None, offset: int) -> list[RunRecord]:
        """A page in an order other than created (``sqlorder``); should a stored value stop
        the database's reading of it (SQLite before 3.42 reads no JSON holding NaN), the
        filtered runs are ordered here instead, by the same key."""
        q = filter_query(wanted, self.dialect)
        sql, params = ordered_ids(q, ordering(order_by, newest_first, self.dialect),
                                  self.dialect, limit, offset)
        with self._transaction(False) as tx:
            try:
                ids = [row[0] for row in tx.all(sql, params)]
            except self.dialect.data_error:
                runs = [row_run(row, self.dialect) for row in tx.all(*full_select(q))]
                return page_by(runs, order_by, newest_first, limit, offset)
            rows = rows_of(tx, ids)
        return [row_run(row, self.dialect) for row in rows]

    def count_runs(self, filter: RunFilter | None = None) -> int:
        q = filter_query(filter or RunFilter(), self.dialect)
        with self._transaction(False) as tx:
            row = tx.one(f"SELECT COUNT(*) FROM {q.source} WHERE {q.where}", q.params)
        return 0 if row is None else int(row[0])

    def folder_counts(self, filter: RunFilter | None = None) -> dict[str, int]:
        """One ``GROUP BY folder`` over the filtered runs."""
        q = filter_query(filter or RunFilter(), self.dialect)
        sql = f"SELECT r.folder, COUNT(*) FROM {q.source} WHERE {q.where} GROUP BY r.folder"
        with self._transaction(False) as tx:
            rows = tx.all(sql, q.params)
        return {str(folder): int(count) for folder, count in sorted(rows)}
