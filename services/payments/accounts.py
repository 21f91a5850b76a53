"""Bank account numbers at rest (issue 8): never stored in plain text.

Each stored number is three columns:

* ``account_enc``: AES-GCM (shared.crypto, key DATA_ENCRYPTION_KEY) with the payee's person id
  as associated data, so a ciphertext copied onto another person's row does not decrypt (a
  database writer without the key cannot redirect money by swapping rows);
* ``account_index``: the keyed hash (HMAC) of the number, for equality look-ups (who else is
  paid into this account) without decrypting anything;
* ``account_masked``: what the roles that do not pay see (``***…0123``), so showing it to them
  needs no decryption either.

The number is decrypted only to send a payment to the bank and to show it to the paying roles
(views.ACCOUNT_ROLES).
"""
from __future__ import annotations

from typing import Any

from shared.crypto import FieldCipher, cipher_for
from shared.idnumbers import mask_account_number


def context(person_id: str) -> str:
    return f"payee_account:{person_id}"


class AccountVault:
    def __init__(self, secret: str) -> None:
        self.cipher: FieldCipher = cipher_for(secret)

    def seal(self, person_id: str, number: str) -> dict[str, Any]:
        """The stored columns of ``number`` paid to ``person_id``."""
        return {"account_enc": self.cipher.encrypt(number, context=context(person_id)),
                "account_index": self.cipher.index(number),
                "account_masked": mask_account_number(number)}

    def open(self, person_id: str, token: str) -> str:
        """The plain number (raises cryptography's InvalidTag for a wrong key or a moved row)."""
        return self.cipher.decrypt(token, context=context(person_id))

    def index(self, number: str) -> str:
        return self.cipher.index(number)
