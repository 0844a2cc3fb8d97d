"""Generator flows: one contract for every preset, normalisation on the domain, circularity, save/load."""

import math

import pytest
import torch

from numl_core.generator.model import (
    PRESETS,
    FlowSpec,
    GeneratorFlow,
    load_flow,
    q_direction,
    save_flow,
    weighted_nll,
)

COND = {"enu": (0.2, 1.0)}


def _tiny(**kwargs) -> GeneratorFlow:
    spec = FlowSpec.preset("S", kwargs.pop("conditions", COND), transforms=3, hidden=32, **kwargs)
    return GeneratorFlow(spec)


@pytest.mark.parametrize("size", sorted(PRESETS))
def test_presets_have_reference_sizes_and_sample_in_domain(size):
    # an untrained flow is uniform on the domain: log q = -log(2 * omega_max * 2 * 2 pi)
    spec = FlowSpec.preset(size, COND)
    assert (spec.transforms, spec.hidden) == PRESETS[size]
    flow = GeneratorFlow(spec)
    torch.manual_seed(0)
    enu = torch.full((64,), 0.7)
    x, logq = flow.sample_and_log_prob(enu)
    assert x.shape == (64, 4) and torch.isfinite(logq).all()
    assert (x[:, [0, 2]].abs() <= 1).all() and (x[:, 1] >= 0).all() and (x[:, 1] <= 0.7 - 0.1056584).all()
    assert (x[:, 3] >= -math.pi).all() and (x[:, 3] < math.pi).all()
    # uniform in the box; in x the nucleon-angle map y2 = 2 sin(alpha/2) - 1 adds -log(2 sin(alpha/2))
    uniform = -math.log(2 * (0.7 - 0.1056584) * 4 * math.pi)
    y, _ = flow.to_box(x, enu)
    expected = uniform - torch.log(y[:, 2] + 1)
    torch.testing.assert_close(logq, expected, atol=1e-4, rtol=1e-5)
    # inverse consistency: log_prob of the samples equals the log q returned while sampling
    torch.testing.assert_close(flow.log_prob(x, enu), logq, atol=2e-3, rtol=1e-4)


@pytest.mark.parametrize(("passes", "frame"), [(2, "q"), (4, "q"), (2, "lab")])
def test_density_normalised_over_the_physical_domain(passes, frame):
    # MC integral of q over the domain with uniform points: 1 within 4 standard errors
    torch.manual_seed(1)
    flow = _tiny(passes=passes, nucleon_frame=frame)
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.3 * torch.randn_like(p))  # move away from the near-identity initialisation
    n, enu = 200_000, 0.9
    u = torch.rand(n, 4)
    top = enu - 0.1056584
    x = torch.stack([2 * u[:, 0] - 1, u[:, 1] * top, 2 * u[:, 2] - 1, (2 * u[:, 3] - 1) * math.pi], 1)
    with torch.no_grad():
        q = torch.exp(flow.log_prob(x, torch.full((n,), enu)))
    vals = q * 8 * math.pi * top
    assert abs(float(vals.mean()) - 1) < 4 * float(vals.std()) / math.sqrt(n)


@pytest.mark.parametrize("passes", [2, 4])
def test_one_pass_sampling_matches_zuko_inverse(passes):
    # the layer-by-layer inverse (one network call per coupling layer) gives zuko's points and densities
    torch.manual_seed(2)
    flow = _tiny(passes=passes)
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.3 * torch.randn_like(p))
    ctx = flow.context(0.2 + 0.8 * torch.rand(2000))
    with torch.no_grad():
        torch.manual_seed(3)
        y_ref, logq_ref = flow(ctx).rsample_and_log_prob()
        torch.manual_seed(3)
        y, logq = flow._sample_box(ctx)
        logq_density = flow(ctx).log_prob(y.clamp(-1 + 1e-6, 1 - 1e-6))
    assert float(logq_ref.std()) > 0.1  # the splines are far from the identity (uniform: constant log q)
    torch.testing.assert_close(y, y_ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(logq, logq_ref, atol=2e-3, rtol=1e-4)
    torch.testing.assert_close(logq, logq_density, atol=2e-2, rtol=1e-3)


@pytest.mark.parametrize("frame", ["q", "lab"])
def test_box_map_round_trip_and_q_frame_axis(frame):
    flow = _tiny(nucleon_frame=frame)
    gen = torch.Generator().manual_seed(6)
    enu = 0.3 + 0.7 * torch.rand(5000, generator=gen, dtype=torch.float64)
    u = torch.rand(5000, 4, generator=gen, dtype=torch.float64)
    x = torch.stack(
        [2 * u[:, 0] - 1, u[:, 1] * (enu - 0.1056584), 2 * u[:, 2] - 1, (2 * u[:, 3] - 1) * math.pi], 1
    )
    y, ladj = flow.to_box(x, enu)
    assert (y.abs() <= 1).all() and torch.isfinite(ladj).all()
    back = flow.from_box(y, enu)
    torch.testing.assert_close(back[:, :3], x[:, :3], atol=1e-9, rtol=0)
    dphi = torch.remainder(back[:, 3] - x[:, 3] + math.pi, 2 * math.pi) - math.pi
    assert float(dphi.abs().max()) < 1e-7
    if frame == "q":
        # a nucleon along q sits at the box edge y2 = -1 (alpha = 0); q points backwards in x (phi_N = pi)
        ux, uz = q_direction(x[:, 0], x[:, 1], enu)
        along = torch.stack([x[:, 0], x[:, 1], uz, torch.full_like(uz, math.pi - 1e-12)], 1)
        assert float((flow.to_box(along, enu)[0][:, 2] + 1).abs().max()) < 1e-6
        assert bool((ux <= 0).all())


def test_phi_is_circular():
    torch.manual_seed(2)
    flow = _tiny()
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.3 * torch.randn_like(p))
    # continuity across phi_N = +-pi (mid-box after the half turn) and across the box's seam, phi_N = 0
    eps = 1e-6
    for phi in (math.pi, 0.0):
        pts = torch.tensor(
            [[0.5, 0.3, 0.2, phi - eps], [0.5, 0.3, 0.2, (phi + eps) - (2 * math.pi if phi else 0)]]
        )
        lp = flow.log_prob(pts, torch.full((2,), 0.8)).detach()
        assert float(lp[0]) == pytest.approx(float(lp[1]), abs=1e-3)
    # a non-circular edge does not have to match: cos_mu = -1 vs +1 differ after the perturbation
    edge = torch.tensor([[-1 + 1e-5, 0.3, 0.2, 0.1], [1 - 1e-5, 0.3, 0.2, 0.1]])
    le = flow.log_prob(edge, torch.full((2,), 0.8)).detach()
    assert abs(float(le[0] - le[1])) > 1e-3


def test_weighted_nll_has_gradients_and_weights_matter():
    torch.manual_seed(3)
    flow = _tiny()
    with torch.no_grad():  # the flow starts uniform, where every weighting gives the same loss
        for p in flow.parameters():
            p.add_(0.3 * torch.randn_like(p))
    y = torch.rand(32, 4) * 2 - 1
    c = torch.zeros(32, 1)
    w1, w2 = torch.ones(32), torch.linspace(0.1, 2.0, 32)
    loss = weighted_nll(flow, (y, c, w1))["loss"]
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in flow.parameters() if p.grad is not None)
    assert float(weighted_nll(flow, (y, c, w2))["loss"].detach()) != pytest.approx(float(loss.detach()))


def test_out_of_range_conditions_raise_or_warn(caplog):
    flow = _tiny(conditions={"enu": (0.2, 1.0), "axial_mass": (0.9, 1.2)})
    with pytest.raises(ValueError, match="outside the flow's trained range"):
        flow.sample_and_log_prob(torch.full((2,), 1.5), {"axial_mass": 1.0})
    with pytest.raises(ValueError, match="axial_mass"):
        flow.sample_and_log_prob(torch.full((2,), 0.5), {"axial_mass": 1.5})
    with pytest.raises(ValueError, match="missing"):
        flow.sample_and_log_prob(torch.full((2,), 0.5))
    x, _ = flow.sample_and_log_prob(torch.full((2,), 0.5), {"axial_mass": 1.3}, extrapolate=True)
    assert x.shape == (2, 4) and "extrapolating" in caplog.text


def test_bad_specs_raise():
    with pytest.raises(ValueError, match="start with 'enu'"):
        FlowSpec(2, 8, {"axial_mass": (0.9, 1.1)})
    with pytest.raises(ValueError, match="high > low"):
        FlowSpec(2, 8, {"enu": (1.0, 0.5)})
    with pytest.raises(ValueError, match="preset"):
        FlowSpec.preset("XL", COND)
    with pytest.raises(ValueError, match="nucleon_frame"):
        FlowSpec(2, 8, COND, nucleon_frame="cm")


def test_save_load_round_trip_and_mismatch_errors(tmp_path):
    torch.manual_seed(4)
    flow = _tiny()
    path = tmp_path / "flow.pt"
    save_flow(flow, path, {"note": "x"})
    loaded, meta = load_flow(path, domain="exclusive_1p1h", conditions=("enu",))
    assert meta == {"note": "x"}
    x = torch.tensor([[0.5, 0.3, 0.2, 0.1]])
    torch.testing.assert_close(loaded.log_prob(x, torch.tensor([0.8])), flow.log_prob(x, torch.tensor([0.8])))
    with pytest.raises(ValueError, match="domain"):
        load_flow(path, domain="electron_inclusive")
    with pytest.raises(ValueError, match="conditioned on"):
        load_flow(path, conditions=("enu", "axial_mass"))
    # a format-1 checkpoint (beam-frame nucleon angles only) loads as a "lab" flow
    lab = _tiny(nucleon_frame="lab")
    payload = {"format": 1, "spec": {k: v for k, v in lab.spec.to_dict().items() if k != "nucleon_frame"}}
    torch.save(payload | {"state": lab.state_dict(), "meta": {}}, tmp_path / "old.pt")
    old, _ = load_flow(tmp_path / "old.pt")
    assert old.spec.nucleon_frame == "lab"
    torch.save({"format": 99}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a generator-flow checkpoint"):
        load_flow(tmp_path / "other.pt")
