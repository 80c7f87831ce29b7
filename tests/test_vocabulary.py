"""Each vocabulary is declared once, in the stage that owns it, and the rest derives from it: each format writes what
it declares."""
from __future__ import annotations

import pytest

from imgsvc.encode import FORMATS, MEDIA_TYPES, EncodeOptions, encode
from tests.test_encode import hole_mask, make_block


@pytest.mark.parametrize("fmt", FORMATS.values(), ids=lambda f: f.name)
def test_each_format_writes_only_the_file_types_it_declares(fmt):
    written = {(out.content_type, out.extension) for out in (
        encode(make_block(3, valid=valid), EncodeOptions(fmt.name)) for valid in (None, hole_mask()))}
    assert written <= {(file.media_type, file.extension) for file in fmt.files}
    assert all(MEDIA_TYPES[extension] == media_type for media_type, extension in written)
