"""spec/signs.py: the symbols whose sign a spec relies on, which positivity.removed may break."""

from alignguard.spec.model import Spec
from alignguard.spec.signs import sign_reliance


def _spec(**sections) -> Spec:
    symbols = {s: s for s in ("a", "b", "c", "d", "e", "f", "g", "h", "y", "z", "std")}
    return Spec.model_validate({"version": 1, "name": "signs", "inputs": {"x": {"role": "other"}},
                                "symbols": symbols, **sections})


def test_each_way_a_spec_states_a_sign():
    spec = _spec(
        probes={"positivity": {"symbols": ["a"]}},
        ranges=[{"symbol": "b", "min": 0.0}, {"symbol": "c", "min": -1.0, "max": 1.0}],
        formulas=[{"equation": "y = log(d + 1) + sqrt(2 * e) - h / (f + 0.001) + g ** 0.5 + c * 3"}],
    )
    found = sign_reliance(spec)
    assert set(found) == {"a", "b", "d", "e", "f", "g", "y"}  # c: its range allows negatives; h: a numerator
    assert found["a"] == ["`probes.positivity` requires it > 0"]
    assert "takes the log of d" in found["d"][0] and "divides by f" in found["f"][0]
    assert "fractional power" in found["g"][0] and "states how it is computed" in found["y"][0]


def test_a_noise_scale_is_relied_on_and_a_free_symbol_is_not():
    spec = _spec(symbols={"z": {"output": "z", "stochastic": {"scale": "std"}}, "std": "std", "f": "f"})
    assert sign_reliance(spec) == {"std": ["it is the noise scale of z (`symbols.z.stochastic.scale`)"]}
    assert "f" not in sign_reliance(_spec())
