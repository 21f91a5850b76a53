import base64

import pytest
from cryptography.exceptions import InvalidTag

from shared.crypto import FieldCipher


def test_encrypt_round_trip_is_randomized_and_index_is_stable():
    c = FieldCipher("k" * 40)
    a, b = c.encrypt("52270119500301002X"), c.encrypt("52270119500301002X")
    assert a != b and "52270119500301002X" not in a
    assert c.decrypt(a) == c.decrypt(b) == "52270119500301002X"
    assert c.index("52270119500301002X") == c.index("52270119500301002X")
    assert c.index("52270119500301002X") != FieldCipher("j" * 40).index("52270119500301002X")


def test_wrong_key_or_context_or_tampering_fails():
    c = FieldCipher("k" * 40)
    token = c.encrypt("6222020200112233445", context="account")
    with pytest.raises(InvalidTag):
        FieldCipher("x" * 40).decrypt(token, context="account")
    with pytest.raises(InvalidTag):
        c.decrypt(token, context="other")
    raw = bytearray(base64.urlsafe_b64decode(token[3:]))
    raw[15] ^= 0x01  # one bit of the ciphertext
    with pytest.raises(InvalidTag):
        c.decrypt("v1:" + base64.urlsafe_b64encode(bytes(raw)).decode(), context="account")
