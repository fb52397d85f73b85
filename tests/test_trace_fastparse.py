"""fastload's byte-level chunk parser against its regular expression (the second method).

The numpy parser must accept only lines the regex accepts and give the same numbers;
anything else it hands back (None) so the regex decides.
"""

from __future__ import annotations

import numpy as np
import pytest

from kvcalc.trace import fastload
from kvcalc.trace.api import sample_path


def _line(ts="0", x="1100", y="7", ids="1, 2, 3"):
    return ('{"timestamp": %s, "input_length": %s, "output_length": %s, "hash_ids": [%s]}\n'
            % (ts, x, y, ids)).encode()


def _regex(data):
    try:
        return fastload._parse_chunk_regex(data)
    except fastload.NotCanonical:
        return None


@pytest.mark.parametrize("name", ["conversation", "synthetic"])
def test_bytes_parser_equals_regex_on_the_mooncake_samples(name):
    data = sample_path(name).read_bytes()
    data = data[:data.rfind(b"\n") + 1]
    fast = fastload._parse_chunk_bytes(data)
    ref = fastload._parse_chunk_regex(data)
    assert fast is not None                     # the published traces are canonical
    for a, b in zip(fast, ref):
        assert a.dtype == np.int64 and np.array_equal(a, b)
    # Hand-checked first line of the conversation trace:
    if name == "conversation":
        first = data[:data.index(b"\n")]
        assert fast[0][0] == int(first.split(b"timestamp\": ")[1].split(b",")[0])


def test_bytes_parser_hand_values():
    data = _line("5", "1100", "7", "10, 20, 30") + _line("9", "3", "0", "") + _line("12", "512", "1", "999999999999999999")
    ts, x, y, cnt, ids = fastload._parse_chunk_bytes(data)
    assert ts.tolist() == [5, 9, 12] and x.tolist() == [1100, 3, 512] and y.tolist() == [7, 0, 1]
    assert cnt.tolist() == [3, 0, 1] and ids.tolist() == [10, 20, 30, 999999999999999999]
    assert fastload._parse_chunk_bytes(data[:-1]) is None      # not cut after a whole line


@pytest.mark.parametrize("data, regex_accepts", [
    (_line(ts="00"), True),                     # leading zero: the regex decides (accepts)
    (_line(ts="D"), False),                     # a literal D where a number belongs
    (_line().replace(b"\n", b"\r\n"), True),    # CRLF
    (_line(ts="1" * 16), False),                # timestamp of 16 digits
    (_line(x="1" * 13), False),
    (_line(ids="1" * 19), False),               # an id of 19 digits
    (_line(ids="1,2"), False),                  # not the canonical ", "
    (_line(ids="1, 2, "), False),
    (_line().replace(b"hash_ids", b"hash_idz"), False),
    (_line() + b"\n", False),                   # a blank line
    ("{\"timestamp\": 0, \"input_length\": 5, \"output_length\": 1, \"hash_ids\": [\u0661]}\n".encode(), False),
])
def test_bytes_parser_refuses_what_it_cannot_pin(data, regex_accepts):
    assert fastload._parse_chunk_bytes(data * 3) is None
    assert (_regex(data * 3) is not None) == regex_accepts


def test_parse_chunk_falls_back_to_the_regex():
    data = _line(ts="007") + _line(ts="8")
    ts = fastload._parse_chunk(data)[0]
    assert ts.tolist() == [7, 8]
    with pytest.raises(fastload.NotCanonical):
        fastload._parse_chunk(_line(ids="1,2"))
