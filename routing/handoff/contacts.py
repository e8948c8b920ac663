"""Where a handoff finds the reporter's name and phone: the registration, sealed at rest.

The message builders decide what each target may see (masked for the 110 CAD, in full for
12345 only with the citizen's consent); this only opens the registered identity.
"""

from __future__ import annotations

from routing.handoff.messages import Contact, ContactLookup
from store.incidents import IncidentRecord
from store.registrations import RegistrationStore


def registered_contact(store: RegistrationStore) -> ContactLookup:
    async def lookup(record: IncidentRecord) -> Contact | None:
        identity = await store.identity(record.channel, record.sender_id)
        if identity is None:
            return None
        return Contact(name=identity.name, phone=identity.phone)

    return lookup
