"""shared/pii.py: person keys, the vault's ciphertexts bound to their key, and the tree swaps
the services use to store keys and show numbers."""
from __future__ import annotations

import pytest
import sqlalchemy as sa
from cryptography.exceptions import InvalidTag

from shared.pii import PersonVault, looks_like_id, looks_like_key, strings_in, swap, vault_table

SECRET = "unit-test-data-encryption-key-0123456789abcdef"
A, B = "522701195003011014", "52270119520601102X"


def _vault(secret: str = SECRET) -> PersonVault:
    return PersonVault(secret, vault_table(sa.MetaData()))


def test_the_key_is_the_keyed_hash_same_everywhere_with_one_secret_and_different_with_another() -> None:
    v = _vault()
    assert v.key(A) == _vault().key(A) == v.cipher.index(A) and looks_like_key(v.key(A))
    assert v.key(A) != v.key(B) and _vault("another-secret-0123456789abcdef-xyz").key(A) != v.key(A)
    assert A not in v.key(A)


def test_the_ciphertext_is_bound_to_its_key() -> None:
    v = _vault()
    a, b = v.seal(A), v.seal(B)
    assert a["person_key"] == v.key(A) and A not in a["person_enc"]
    assert v.open(a["person_key"], a["person_enc"]) == A
    with pytest.raises(InvalidTag):  # moved onto another person's row
        v.open(b["person_key"], a["person_enc"])
    with pytest.raises(InvalidTag):  # another DATA_ENCRYPTION_KEY
        _vault("another-secret-0123456789abcdef-xyz").open(a["person_key"], a["person_enc"])


def test_keyed_replaces_every_number_in_values_lists_and_dict_keys_and_swap_gives_them_back() -> None:
    v = _vault()
    tree = {"members": [{"person_id": A, "birth_date": "1950-03-01"}, {"person_id": B}],
            "covered": [A], "incomes": {A: "100.00"}, "note": "522701", "n": 3}
    keyed = v.keyed(tree)
    assert A not in repr(keyed) and B not in repr(keyed)
    assert keyed["members"][1]["person_id"] == v.key(B) and keyed["incomes"] == {v.key(A): "100.00"}
    assert keyed["note"] == "522701" and keyed["n"] == 3  # other values untouched
    assert strings_in(keyed, looks_like_key) == {v.key(A), v.key(B)}
    assert swap(keyed, {v.key(A): A, v.key(B): B}) == tree
    assert looks_like_id(A) and looks_like_id(B) and not looks_like_id("5227011950030110")
