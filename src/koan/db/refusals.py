"""What the database refuses because of what a client sent, as the 4xx it deserves.

Validation keeps most bad input from reaching the database, but not every field of every
request can foresee every rule of every backend: PostgreSQL refuses NUL in text and values past
a column's size, and two requests racing to create the same row meet a unique constraint. Those
are the client's input or timing, never a fault of the server, so they are answered 400 or
409 instead of 500. So is a change to a row another request deleted after this one read it (a
class's settings saved as another instructor deletes the class): the ORM's update or delete
finds no row and raises StaleDataError. Anything else the database raises stays an error of
the server's.
"""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from koan.errors import BadRequest, Conflict, KoanError

# PostgreSQL's SQLSTATEs for data the client sent that a column cannot hold: 22000 is what
# asyncpg gives a value it cannot even encode (a Decimal past numeric's exponent), 22001 text
# past a column's length, 22003 a number out of range, 22007/22008 a date it cannot read or
# hold, 22021 a byte not in the encoding (NUL), 22P05 a character it cannot translate.
_BAD_DATA = {"22000", "22001", "22003", "22007", "22008", "22021", "22P05"}
# Two requests creating the same row at once (23505), or one referring to a row another has
# just deleted (23503).
_RACES = {"23505", "23503"}
_SQLITE_RACES = ("UNIQUE constraint failed", "FOREIGN KEY constraint failed")
_RACED = "Another request changed this at the same moment; reload and try again."


def refusal(exc: BaseException) -> KoanError | None:
    """The client error an exception from the database stands for, or None for a server's."""
    if isinstance(exc, StaleDataError):
        return Conflict(_RACED, code="Conflict")
    if not isinstance(exc, DBAPIError):
        return None
    code = getattr(exc.orig, "pgcode", None) or getattr(exc.orig, "sqlstate", None)
    if code in _BAD_DATA:
        return BadRequest(
            "A value was not accepted: text must not contain NUL characters, and every value "
            "must fit its field.",
            code="BadValue",
        )
    if isinstance(exc, IntegrityError) and (
        code in _RACES or any(text in str(exc.orig) for text in _SQLITE_RACES)
    ):
        return Conflict(_RACED, code="Conflict")
    return None
