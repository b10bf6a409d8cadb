"""Noise on a symbol, wherever it is drawn: a method of the root module (VIB), torch.distributions in a
plain function (beta-VAE); the learned-scale test and the named finding for `.sample()`."""

from zoo_helpers import edited_model, failures, verdicts, zoo_spec

NOISE = ("noise.present", "noise.eval", "noise.reparameterised")


def _noise_failures(design, model):
    spec = zoo_spec(design)  # symbols carry the requirement; no components' reaches needed
    return {r.check_id: r for r in failures(spec, model) if r.check_id in NOISE}


def test_noise_drawn_in_a_root_method_passes_on_the_symbol():
    spec = zoo_spec("vib")
    for check_id in NOISE:
        assert verdicts(spec, "vib/vib.py", check_id) == ["pass"]


def test_noise_drawn_by_torch_distributions_rsample_passes():
    spec = zoo_spec("beta_vae")
    for check_id in NOISE:
        assert verdicts(spec, "beta_vae/beta_vae.py", check_id) == ["pass"]


def test_sample_instead_of_rsample_is_named():
    found = _noise_failures("beta_vae", "beta_vae/beta_vae_sample.py")
    assert "`.sample()` where `.rsample()` was needed" in found["noise.reparameterised"].found


def test_detached_scale_fails_the_learned_scale_test():
    found = _noise_failures("vib", "vib/vib_detached_std.py")
    assert set(found) == {"noise.reparameterised"}
    assert "dz/dstd = 0" in found["noise.reparameterised"].found


def test_missing_noise_and_noise_in_eval_mode_fail():
    assert "noise.present" in _noise_failures("vib", "vib/vib_no_noise.py")
    assert set(_noise_failures("vib", "vib/vib_noisy_eval.py")) == {"noise.eval"}


def test_root_module_component_is_called_and_its_noise_counts():
    spec = zoo_spec("vib", **{"components.bottleneck": {
        "module": "", "stochastic": {"symbol": "z", "through_scale": True, "eval": "deterministic"}}})
    for check_id in ("component.called", "noise.present", "noise.eval"):
        assert set(verdicts(spec, "vib/vib.py", check_id)) == {"pass"}, check_id


def test_a_scale_no_autograd_graph_holds_fails_instead_of_erroring(tmp_path):
    """A constant scale (the `component.constant` mutant of logvar_head) does not require grad: the
    learned-scale test raised autograd's RuntimeError (exit 2) instead of saying the scale is not learned."""
    model = edited_model(tmp_path, "beta_vae/beta_vae.py", "std = torch.exp(0.5 * logvar)",
                         "std = torch.full_like(mu, 0.5)")
    found = _noise_failures("beta_vae", model)
    assert found["noise.reparameterised"].status.value == "fail", found["noise.reparameterised"]
    assert "dz/dstd = 0" in found["noise.reparameterised"].found
