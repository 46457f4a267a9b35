"""The command-line parser: cheap to build, and its choices agree with the library."""


def test_cli_parser_choices_match_the_library():
    from detbox.cli.convert_weights import TORCHVISION_ARCHS
    from detbox.cli.train import LAUNCHER_CHOICES
    from detbox.engine.launcher import LAUNCHERS
    from detbox.models.weight_conversion.torchvision import SUPPORTED_ARCHS

    assert LAUNCHER_CHOICES == LAUNCHERS
    assert TORCHVISION_ARCHS == SUPPORTED_ARCHS


def test_building_the_cli_parser_imports_no_torch():
    import subprocess
    import sys

    code = ("import sys; from detbox.cli.main import build_parser; build_parser(); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
