"""Gradient rules at the level designs state them: reach / avoid a module, a parameter name or a symbol
(a chunk of a module output included), frozen parameters, straight-through estimators."""

import pytest

from zoo_helpers import edited_model, failures, verdicts, zoo_spec


def test_loss_reaches_a_chunk_of_a_module_output():
    spec = zoo_spec("film", "losses")
    assert set(verdicts(spec, "film/film.py", "loss.reaches")) == {"pass"}
    failed = failures(spec, "film/film_detached_gamma.py", "loss.reaches")
    assert len(failed) == 1 and "dL/dgamma is exactly 0" in failed[0].found


def test_loss_reaches_a_parameter_name():
    spec = zoo_spec("film", "losses", **{"losses.ce.reaches": ["film_generator.weight"]})
    assert verdicts(spec, "film/film.py", "loss.reaches") == ["pass"]
    spec = zoo_spec("film", "losses", **{"losses.ce.reaches": ["no_such.weight"]})
    failed = failures(spec, "film/film.py", "loss.reaches")
    assert "matched nothing" in failed[0].found


def test_stop_gradient_and_frozen_target():
    spec = zoo_spec("byol", "losses", "gradients")
    assert set(verdicts(spec, "byol/byol.py", "loss.avoids")) == {"pass"}
    assert set(verdicts(spec, "byol/byol.py", "params.frozen")) == {"pass"}
    trained = {r.check_id for r in failures(spec, "byol/byol_target_trained.py")}
    assert {"loss.avoids", "params.frozen"} <= trained
    trainable = {r.check_id for r in failures(spec, "byol/byol_trainable_target.py")}
    assert "params.frozen" in trainable and "loss.avoids" not in trainable


def test_commitment_loss_must_not_move_the_codebook():
    spec = zoo_spec("vqvae", "losses")
    assert set(verdicts(spec, "vqvae/vqvae.py", "loss.avoids")) == {"pass"}
    failed = failures(spec, "vqvae/vqvae_commitment_both_ways.py", "loss.avoids")
    assert [r.element for r in failed] == ["loss commitment"]


@pytest.mark.parametrize("variant", ["vqvae_no_straight_through", "vqvae_reversed_st"])
def test_straight_through_estimator(variant):
    spec = zoo_spec("vqvae", "losses")
    assert verdicts(spec, "vqvae/vqvae.py", "gradient.straight_through") == ["pass"]
    failed = failures(spec, f"vqvae/{variant}.py", "gradient.straight_through")
    assert failed and "no gradient reaches z_e" in failed[0].found


def test_unknown_gradient_target_is_a_spec_error():
    with pytest.raises(ValueError, match="gradient target 'nosuch' is not defined"):
        zoo_spec("film", "losses", **{"losses.ce.avoids": ["nosuch"]})


def test_a_reversed_term_with_a_straight_through_estimator_fails_descent_on_the_decoder(tmp_path):
    """loss.descent left out every parameter of a term that declares `straight_through`, so a reversed
    reconstruction loss (mutate's loss.reversed on VQ-VAE) passed; only the parameters upstream of the
    estimator are left out now, and the decoder's reversed slope fails."""
    recon = '(outputs["x_hat"] - batch["x"]).pow(2).sum(-1).mean()'
    model = edited_model(tmp_path, "vqvae/vqvae.py", f'"recon": {recon},', f'"recon": _reversed({recon}),',
                         appended="\n\ndef _reversed(value):\n    return 2 * value.detach() - value  # same value, "
                         "gradient negated\n")
    spec = zoo_spec("vqvae", "losses", "gradients")
    assert verdicts(spec, "vqvae/vqvae.py", "loss.descent") == ["pass"] * 3
    failed = failures(spec, model, "loss.descent")
    assert [r.element for r in failed] == ["loss recon"], failed
