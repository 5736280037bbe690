"""Sliders for the course's figures, that still teach when no widget is rendered.

:func:`slider_plot` shows a figure-drawing function with one slider per keyword argument
(:class:`Slider`: a range and a default). It is built so that nothing a learner needs lives
only inside a widget:

1. ``draw`` is first called with every slider's default and its figure becomes an ordinary
   cell output, so it shows under the test runner (nbval), in a static view of an executed
   notebook and in a kernel without ipywidgets alike.
2. With ipywidgets importable, the sliders follow, above an output area that is empty until a
   slider is released; then ``draw`` runs with the sliders' values and its figure appears
   there, below the default one (an ``interact`` would draw the default figure *inside* a widget,
   invisible wherever widgets are not rendered).
3. Without ipywidgets, one printed line says how to get the sliders.

A notebook pairs every slider with a static figure or an ``assert`` cell that states the same
lesson for a few chosen values, so the lesson never depends on moving a slider.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from numbers import Real

__all__ = ["Slider", "slider_plot"]


@dataclass(frozen=True, kw_only=True)
class Slider:
    """The range and default of one slider of :func:`slider_plot`.

    Attributes:
        value: the default: the value drawn first, and the only one drawn without widgets.
        min: the smallest value the slider reaches.
        max: the largest value the slider reaches.
        step: the increment of a linear slider; of a log slider, the increment of
            ``log10(value)``. ``None``: a hundredth of the range.
        log: a logarithmic slider (``ipywidgets.FloatLogSlider``, base 10), for quantities that
            span decades (a KL coefficient); ``min`` must then be positive.
        label: the text shown next to the slider; ``None`` uses the keyword's name.
    """

    value: float
    min: float
    max: float
    step: float | None = None
    log: bool = False
    label: str | None = None

    def check(self, name: str) -> None:
        """Raise ``ValueError``/``TypeError`` naming the slider ``name`` if this spec cannot be drawn."""
        for field in ("value", "min", "max") + (("step",) if self.step is not None else ()):
            x = getattr(self, field)
            if isinstance(x, bool) or not isinstance(x, Real) or not math.isfinite(x):
                raise TypeError(f"slider {name!r}: {field} must be a finite number, got {x!r}")
        if not self.min < self.max:
            raise ValueError(f"slider {name!r}: min ({self.min}) must be below max ({self.max}); swap them")
        if not self.min <= self.value <= self.max:
            raise ValueError(f"slider {name!r}: the default value {self.value} lies outside [min, max] = "
                             f"[{self.min}, {self.max}]; widen the range or pick a default inside it")
        if self.log and self.min <= 0:
            raise ValueError(f"slider {name!r}: a log slider needs min > 0, got {self.min}; "
                             "use a positive min or log=False")
        low, high = self.bounds()
        if self.step is not None and not 0 < self.step <= high - low:
            raise ValueError(f"slider {name!r}: step must be in (0, {high - low:g}] (the range"
                             f"{' of log10(value)' if self.log else ''}), got {self.step}")

    def bounds(self) -> tuple[float, float]:
        """The slider's ends on its own scale: ``(min, max)``, or their ``log10`` for a log slider."""
        return (math.log10(self.min), math.log10(self.max)) if self.log else (self.min, self.max)

    def widget(self, name: str):
        """The ipywidgets slider for this spec (released-only updates: a redraw may retrain a model)."""
        import ipywidgets

        low, high = self.bounds()
        step = self.step if self.step is not None else (high - low) / 100
        common = dict(value=self.value, min=low, max=high, step=step, description=self.label or name,
                      continuous_update=False, style={"description_width": "initial"})
        if self.log:
            return ipywidgets.FloatLogSlider(base=10, readout_format=".3g", **common)
        decimals = max(0, -math.floor(math.log10(step) + 1e-9))
        return ipywidgets.FloatSlider(readout_format=f".{decimals}f", **common)


def slider_plot(draw: Callable[..., None], **sliders: Slider) -> None:
    """Show ``draw`` for the sliders' defaults, then (with ipywidgets) sliders that redraw it.

    Args:
        draw: makes a figure for one setting and shows it (``plt.show()``), e.g.
            ``draw(gamma=0.99)``; it may print too. It is called with one keyword per slider.
        **sliders: one :class:`Slider` per keyword argument of ``draw``.

    Without ipywidgets (or before any slider moves) ``draw`` runs exactly once, with the
    defaults. Moving a slider calls it again with every slider's current value and replaces
    the previous redraw below the sliders; the default figure above them stays for comparison.
    """
    if not callable(draw):
        raise TypeError(f"draw must be a function that draws one figure, got {type(draw).__name__}")
    if not sliders:
        raise ValueError("slider_plot needs at least one slider, e.g. slider_plot(draw, gamma=Slider(value=0.9, "
                         "min=0.5, max=0.999))")
    for name, spec in sliders.items():
        if not isinstance(spec, Slider):
            raise TypeError(f"slider {name!r} must be a Slider(value=..., min=..., max=...), got {spec!r}")
        spec.check(name)
    defaults = {name: spec.value for name, spec in sliders.items()}
    try:
        inspect.signature(draw).bind(**defaults)
    except TypeError as err:
        raise ValueError(f"draw{inspect.signature(draw)} cannot take the sliders {sorted(sliders)} as keywords "
                         f"({err}); name each slider after a parameter of draw") from None

    draw(**defaults)
    try:
        import ipywidgets
        from IPython.display import clear_output, display
    except ImportError:
        shown = ", ".join(f"{name}={value:g}" for name, value in defaults.items())
        print(f"Drawn for {shown}. For sliders: pip install ipywidgets, then rerun this cell.")
        return

    controls = {name: spec.widget(name) for name, spec in sliders.items()}
    out = ipywidgets.Output()

    def redraw(_change: dict) -> None:  # called by traitlets with the change record
        with out:
            clear_output(wait=True)
            draw(**{name: control.value for name, control in controls.items()})

    for control in controls.values():
        control.observe(redraw, names="value")
    hint = ipywidgets.HTML("<i>Above: the defaults. Release a slider to redraw below.</i>")
    display(ipywidgets.VBox([hint, *controls.values(), out]))
