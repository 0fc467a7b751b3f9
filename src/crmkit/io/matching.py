"""Finding contacts and users by e-mail address, for calendars and the inbox.

Addresses are compared by their matching key (:func:`crmkit.core.duplicates.email_key`:
case-folded, without a ``+tag``), so ``Ana.Perez+crm@ACME.es`` finds the
contact ``ana.perez@acme.es``.

.. versionadded:: 0.1
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from crmkit.core.duplicates import email_key
from crmkit.core.entities import Contact, User
from crmkit.core.query import Contains

if TYPE_CHECKING:
    from crmkit.app import CRM

__all__ = ["EmailIndex", "address_of", "key_of"]


def key_of(address: str) -> str:
    """The matching key of an address (case-folded, no ``+tag``)."""
    return email_key(address) or address.strip().casefold()


def address_of(value: object) -> str | None:
    """The e-mail address of an iCalendar ``mailto:`` value (or plain text), if any."""
    if value is None:
        return None
    text = str(value).strip()
    if text.lower().startswith("mailto:"):
        text = text[7:]
    return text if "@" in text else None


class EmailIndex:
    """The CRM's contacts and users by e-mail, looked up once per address."""

    def __init__(self, crm: CRM):
        self._crm = crm
        self._contacts: dict[str, Contact | None] = {}
        self._users: dict[str, User] | None = None

    def contact(self, address: str) -> Contact | None:
        """The contact (not archived) whose e-mail has the address's matching key.

        Several such contacts: the oldest.
        """
        key = key_of(address)
        if key not in self._contacts:
            local = key.partition("@")[0]
            found = self._crm.contacts.find(Contains("email", local), order_by="created_at")
            self._contacts[key] = next(
                (c for c in found if c.email is not None and key_of(str(c.email)) == key), None
            )
        return self._contacts[key]

    def user(self, address: str) -> User | None:
        """The CRM user (not archived) whose e-mail has the address's matching key."""
        if self._users is None:
            self._users = {}
            for user in self._crm.users.find(order_by="created_at", limit=None):
                if user.email is not None:
                    self._users.setdefault(key_of(str(user.email)), user)
        return self._users.get(key_of(address))
