"""A server's API tokens in the SQL stores: the ``tokens`` table (see ``sqlschema.SCHEMA``).

``tokens (name, digest, read_only, created, revoked)``: the name is the key, the digest
unique (its index is how a request's token is found). Every call reads the table: nothing is
cached, so a token revoked through one server worker stops working in all of them at once.
"""

from __future__ import annotations

from abc import abstractmethod
from contextlib import AbstractContextManager

from runyard.errors import TokenNotFound
from runyard.model import TokenRecord
from runyard.stores.registrybase import check_token, secret_taken, token_taken
from runyard.stores.sqlschema import Row, Tx

SELECT_TOKEN = "SELECT name, digest, read_only, created, revoked FROM tokens"


class SqlTokens:
    """Mixed into ``SqlStore``, which gives the transactions."""

    @abstractmethod
    def _transaction(self, write: bool) -> AbstractContextManager[Tx]: ...

    def add_token(self, token: TokenRecord) -> TokenRecord:
        check_token(token)
        with self._transaction(True) as tx:
            done = tx.cursor.execute(tx.dialect.sql(
                "INSERT INTO tokens (name, digest, read_only, created, revoked) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"),
                (token.name, token.digest, int(token.read_only), token.created, token.revoked))
            if not done.rowcount:
                if tx.one("SELECT 1 FROM tokens WHERE name = ?", (token.name,)):
                    raise token_taken(token.name)
                raise secret_taken()
        return token

    def find_token(self, digest: str) -> TokenRecord | None:
        with self._transaction(False) as tx:
            row = tx.one(f"{SELECT_TOKEN} WHERE digest = ?", (digest,))
        return None if row is None else _token(row)

    def list_tokens(self) -> list[TokenRecord]:
        with self._transaction(False) as tx:
            return [_token(row) for row in tx.all(f"{SELECT_TOKEN} ORDER BY name")]

    def revoke_token(self, name: str, now: float | None = None) -> TokenRecord:
        import time

        when = time.time() if now is None else now
        with self._transaction(True) as tx:
            tx.run("UPDATE tokens SET revoked = ? WHERE name = ? AND revoked IS NULL",
                   (when, name))
            row = tx.one(f"{SELECT_TOKEN} WHERE name = ?", (name,))
        if row is None:
            raise TokenNotFound(name)
        return _token(row)


def _token(row: Row) -> TokenRecord:
    name, digest, read_only, created, revoked = row
    return TokenRecord(name, digest, bool(read_only), float(created),
                       None if revoked is None else float(revoked))
