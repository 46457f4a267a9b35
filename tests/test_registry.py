import pytest

from detbox.errors import ConfigError
from detbox.registry import Registry


@pytest.fixture()
def registry():
    reg = Registry("widget")

    @reg.register
    class Widget:
        def __init__(self, *, size: int, color: str = "red"):
            self.size, self.color = size, color

    @reg.register(name="Loose")
    class AcceptsAnything:
        def __init__(self, **kwargs):
            self.kwargs = kwargs

    return reg


def test_build_by_name_and_by_class(registry):
    widget = registry.build(dict(type="Widget", size=3))
    assert (widget.size, widget.color) == (3, "red")
    again = registry.build(dict(type=registry.get("Widget"), size=4, color="blue"))
    assert (again.size, again.color) == (4, "blue")


def test_built_objects_pass_through(registry):
    widget = registry.build(dict(type="Widget", size=1))
    assert registry.build(widget) is widget


def test_defaults_fill_only_missing_keys(registry):
    assert registry.build(dict(type="Widget", size=1), color="green").color == "green"
    assert registry.build(dict(type="Widget", size=1, color="x"), color="green").color == "x"


def test_unknown_key_names_key_component_and_closest(registry):
    with pytest.raises(ConfigError) as err:
        registry.build(dict(type="Widget", size=1, colour="blue"))
    message = str(err.value)
    assert "'colour'" in message and "Widget" in message and "Did you mean 'color'" in message


def test_unknown_type_suggests_closest(registry):
    with pytest.raises(ConfigError, match="Did you mean 'Widget'"):
        registry.build(dict(type="Widgett", size=1))


def test_missing_required_key(registry):
    with pytest.raises(ConfigError, match="missing required key.*size"):
        registry.build(dict(type="Widget"))


def test_var_kwargs_accept_anything(registry):
    assert registry.build(dict(type="Loose", anything=1)).kwargs == {"anything": 1}


def test_missing_type_lists_choices(registry):
    with pytest.raises(ConfigError, match="needs a 'type' key"):
        registry.build(dict(size=1))


def test_two_classes_under_one_name_are_refused_naming_both(registry):
    both = r"named 'Widget' \(.*<locals>\.Widget\).*<locals>\.Other"
    with pytest.raises(ConfigError, match=both):
        @registry.register(name="Widget")
        class Other:
            pass


def test_the_same_class_defined_again_replaces_it(registry):
    """A config file executed twice, or a module reloaded, defines the class anew."""
    namespace: dict = {"registry": registry, "__name__": "user_module"}
    source = "@registry.register\nclass Gadget:\n    def __init__(self, size: int = 1):\n" \
             "        self.size = size\n"
    exec(source, namespace)  # noqa: S102
    first = registry.get("Gadget")
    exec(source, namespace)  # noqa: S102
    assert registry.get("Gadget") is not first and registry.build(dict(type="Gadget")).size == 1



def test_values_are_checked_against_type_hints(registry):
    with pytest.raises(ConfigError) as err:
        registry.build(dict(type="Widget", size="big"))
    assert str(err.value) == "widget 'Widget' key 'size': expected int, got 'big' (str)"
    assert registry.build(dict(type="Loose", size="big")).kwargs == {"size": "big"}


def test_path_is_named_in_errors_and_passed_to_nested_builds(registry):
    @registry.register
    class Box:
        def __init__(self, *, parts: list):
            self.parts = [registry.build(p) for p in parts]

    with pytest.raises(ConfigError, match=r"'Widget' key 'size' \(top.parts.1.size\)"):
        registry.build(dict(type="Box", parts=[dict(type="Widget", size=1),
                                                dict(type="Widget", size="x")]), path="top")
    with pytest.raises(ConfigError, match=r"'Widget' \(top\) got an unknown key"):
        registry.build(dict(type="Widget", size=1, colour="red"), path="top")
