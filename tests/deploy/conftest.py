import pytest

from tests.tiny_detector import write_tiny


@pytest.fixture(scope="session")
def retina_files(tmp_path_factory):
    """(config, training checkpoint) of a tiny RetinaNet."""
    return write_tiny(tmp_path_factory.mktemp("retina"))
