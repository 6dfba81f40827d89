"""pytest shows the values behind a failed assertion only in modules it rewrites; the
conformance suite is an installed module, so it is named here, before it is imported."""

import pytest

pytest.register_assert_rewrite("sidecar.conformance")
