"""rl_basics.widgets.slider_plot without a browser: with ipywidgets, and with it made unimportable."""

from __future__ import annotations

import sys

import IPython.display
import ipywidgets
import pytest

from rl_basics.widgets import Slider, slider_plot


class Recorder:
    """A draw function that records the keyword arguments of every call."""

    def __init__(self):
        self.calls: list[dict] = []

    def __call__(self, gamma: float = 0.0, beta: float = 0.0) -> None:
        self.calls.append({"gamma": gamma, "beta": beta})


@pytest.fixture
def shown(monkeypatch) -> list:
    """What slider_plot passes to IPython's display (the slider box)."""
    objects: list = []
    monkeypatch.setattr(IPython.display, "display", lambda obj: objects.append(obj))
    return objects


def _sliders(box: ipywidgets.VBox) -> dict:
    return {w.description: w for w in box.children if isinstance(w, (ipywidgets.FloatSlider, ipywidgets.FloatLogSlider))}


def test_with_ipywidgets_draws_defaults_once_then_redraws_on_slider_moves(shown):
    draw = Recorder()
    slider_plot(draw, gamma=Slider(value=0.99, min=0.5, max=0.999, step=0.001),
                beta=Slider(value=0.1, min=0.001, max=10.0, log=True, label="KL coefficient β"))
    assert draw.calls == [{"gamma": 0.99, "beta": 0.1}]  # the default figure, an ordinary output
    (box,) = shown
    sliders = _sliders(box)
    gamma, beta = sliders["gamma"], sliders["KL coefficient β"]
    assert isinstance(gamma, ipywidgets.FloatSlider) and isinstance(beta, ipywidgets.FloatLogSlider)
    assert (gamma.min, gamma.max, gamma.step, gamma.value) == (0.5, 0.999, 0.001, 0.99)
    assert gamma.readout_format == ".3f" and not gamma.continuous_update
    assert beta.base == 10 and (beta.min, beta.max) == pytest.approx((-3.0, 1.0))
    assert beta.step == pytest.approx(0.04) and beta.value == pytest.approx(0.1)  # step: 1/100 of 4 decades
    assert isinstance(box.children[-1], ipywidgets.Output)  # where the redraws go

    gamma.value = 0.9
    assert draw.calls[-1] == {"gamma": 0.9, "beta": pytest.approx(0.1)}
    beta.value = 1.0
    assert draw.calls[-1] == {"gamma": 0.9, "beta": pytest.approx(1.0)}
    assert len(draw.calls) == 3


def test_without_ipywidgets_draws_defaults_once_and_says_how_to_get_sliders(monkeypatch, shown, capsys):
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # `import ipywidgets` now raises ImportError
    draw = Recorder()
    slider_plot(draw, gamma=Slider(value=0.9, min=0.5, max=0.999))
    assert draw.calls == [{"gamma": 0.9, "beta": 0.0}]
    assert shown == []
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "gamma=0.9" in out and "pip install ipywidgets" in out


def test_default_step_is_a_hundredth_of_the_range(shown):
    slider_plot(Recorder(), gamma=Slider(value=0.5, min=0.0, max=1.0))
    gamma = _sliders(shown[0])["gamma"]
    assert gamma.step == pytest.approx(0.01) and gamma.readout_format == ".2f"


@pytest.mark.parametrize("spec, message", [
    (Slider(value=0.5, min=1.0, max=0.0), "min .* below max"),
    (Slider(value=2.0, min=0.0, max=1.0), "outside \\[min, max\\]"),
    (Slider(value=0.5, min=0.0, max=1.0, log=True), "log slider needs min > 0"),
    (Slider(value=0.5, min=0.0, max=1.0, step=0.0), "step must be in"),
    (Slider(value=0.5, min=0.0, max=1.0, step=2.0), "step must be in"),
])
def test_bad_slider_specs_raise_a_value_error_naming_the_slider(spec, message):
    draw = Recorder()
    with pytest.raises(ValueError, match=f"slider 'gamma'.*{message}"):
        slider_plot(draw, gamma=spec)
    assert draw.calls == []


def test_bad_arguments_raise_clear_errors():
    draw = Recorder()
    with pytest.raises(TypeError, match="slider 'gamma' must be a Slider"):
        slider_plot(draw, gamma=(0.5, 0.999, 0.9))
    with pytest.raises(TypeError, match="slider 'gamma': value must be a finite number"):
        slider_plot(draw, gamma=Slider(value=float("nan"), min=0.0, max=1.0))
    with pytest.raises(ValueError, match="name each slider after a parameter of draw"):
        slider_plot(draw, gama=Slider(value=0.5, min=0.0, max=1.0))
    with pytest.raises(ValueError, match="at least one slider"):
        slider_plot(draw)
    with pytest.raises(TypeError, match="draw must be a function"):
        slider_plot("draw", gamma=Slider(value=0.5, min=0.0, max=1.0))
    assert draw.calls == []
