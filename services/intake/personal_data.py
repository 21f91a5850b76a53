"""Identity numbers at rest in ``applications`` (issue 8): never stored in plain text.

* ``applicant_person_enc``: the applicant's 身份证号, AES-GCM (shared.crypto, key
  DATA_ENCRYPTION_KEY) with ``applicant:<application id>`` as associated data;
* ``applicant_person_index``: its keyed hash (HMAC), the look-up index; ``open_key`` (one open
  application per person and program) is ``<index>:<program>``, never the number;
* ``household_enc``: the whole household (every member's 身份证号, birth date, income) as one
  AES-GCM ciphertext with ``household:<application id>`` as associated data.

The associated data binds a ciphertext to its application: copied onto another row it does
not decrypt. Rows are decrypted in process, when they are presented (masked per role by
shared.privacy) or put on an event (events between services carry the plain number: they are
internal and the consumers store them).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from shared.crypto import FieldCipher, cipher_for


class ApplicationVault:
    def __init__(self, secret: str) -> None:
        self.cipher: FieldCipher = cipher_for(secret)

    def index(self, person_id: str) -> str:
        return self.cipher.index(person_id)

    @staticmethod
    def open_key(index: str, program: str) -> str:
        return f"{index}:{program}"

    def seal(self, app_id: str, person_id: str, household: Mapping[str, Any], program: str) -> dict[str, Any]:
        """The stored columns for an application's applicant and household."""
        index = self.cipher.index(person_id)
        return {
            "applicant_person_enc": self.cipher.encrypt(person_id, context=f"applicant:{app_id}"),
            "applicant_person_index": index,
            "open_key": self.open_key(index, program),
            "household_enc": self.cipher.encrypt(orjson.dumps(household).decode(), context=f"household:{app_id}"),
        }

    def person(self, app_id: str, token: str) -> str:
        return self.cipher.decrypt(token, context=f"applicant:{app_id}")

    def household(self, app_id: str, token: str) -> dict[str, Any]:
        data: dict[str, Any] = orjson.loads(self.cipher.decrypt(token, context=f"household:{app_id}"))
        return data

    def open(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """A stored row with ``applicant_person_id`` and ``household`` in the clear (in memory only)."""
        out = dict(row)
        if "applicant_person_id" not in out:
            out["applicant_person_id"] = self.person(row["id"], row["applicant_person_enc"])
        if "household" not in out:
            out["household"] = self.household(row["id"], row["household_enc"])
        return out
