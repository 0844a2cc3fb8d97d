"""Generator output as NuHepMC: the writer's header, statuses and weights read back with pyhepmc, the
file reads back through numl's own reader, and the sample action writes it for a .hepmc output."""

from __future__ import annotations

import numpy as np
import pyhepmc
import pytest
import torch

from numl_core.data.generators import exclusive_1p1h as ex
from numl_core.data.kinematics import MUON_MASS, minkowski_square
from numl_core.data.nuhepmc import KnockoutRun, read_nuhepmc, write_nuhepmc
from numl_core.generator.workflow import knockout_tracks, sample_events
from numl_core.jobs import Progress

SIGMA, SIGMA_ERR = 9.5e-39, 2.0e-41  # cm^2 per nucleus


def _events(n: int = 40, seed: int = 3) -> tuple[np.ndarray, ex.KnockoutEvent]:
    """Accept-reject events of the 1p3/2 shell at 0.8-1.0 GeV and their lab-frame four-momenta."""
    model = ex.carbon_model("1p3/2")
    flux = ex.Flux.flat(0.8, 1.0)
    ar = ex.accept_reject(model, n, flux, ex.density_bound(model, flux, n_probe=20_000), seed=seed)
    e_rem = ex.removal_energy_sample(ar.x, ar.enu, model, seed=seed).numpy()
    x, enu = ar.x.numpy(), ar.enu.numpy()
    return enu, ex.knockout_momenta(enu, *x.T, e_rem, phi_mu=np.linspace(-3, 3, n))


def _write(path, enu_events, weights=None):
    enu, ev = enu_events
    run = KnockoutRun(SIGMA, SIGMA_ERR, 200, "CCQE", "test", "0.1.0", np.array([0.8, 0.9, 1.0]), np.ones(2))
    return write_nuhepmc(path, run, **knockout_tracks(ev), weights=weights)


def _typed(attributes) -> dict[str, str]:
    """Run-info attributes as read back (unparsed) by pyhepmc, as their text."""
    return {name: attributes[name].astype(str) for name in attributes}


@pytest.fixture(scope="module")
def knockout():
    return _events()


def test_knockout_momenta_conserve_four_momentum_and_keep_the_masses(knockout):
    enu, ev = knockout
    balance = ev.neutrino + ev.target - ev.muon - ev.proton - ev.remnant
    assert np.abs(balance).max() < 1e-12
    assert np.allclose(np.sqrt(minkowski_square(ev.muon)), MUON_MASS, atol=1e-9)
    assert np.allclose(np.sqrt(minkowski_square(ev.proton)), ex.NUCLEON_MASS, atol=1e-9)
    # the struck neutron's missing momentum lies where the shell's momentum density lives
    assert np.linalg.norm(ev.neutron[:, 1:], axis=1).max() < 0.6
    np.testing.assert_allclose(ev.neutrino[:, 0], enu)


def test_removal_energies_follow_the_shells():
    model = ex.carbon_model()  # both shells: 1p3/2 near 18.7 MeV, 1s1/2 near 42 MeV
    flux = ex.Flux.flat(0.8, 1.0)
    ar = ex.accept_reject(model, 300, flux, ex.density_bound(model, flux, n_probe=20_000), seed=4)
    e = ex.removal_energy_sample(ar.x, ar.enu, model, seed=1).numpy()
    p_shell = (e < 0.03).mean()
    assert 0.45 < p_shell < 0.85  # occupancies 4:2, modulated by the momentum densities
    omega = ar.x[:, 1].numpy()
    assert (e < omega).all()  # a knocked-out nucleon needs omega above its removal energy


def test_written_file_reads_back_with_pyhepmc(knockout, tmp_path):
    weights = np.linspace(1.0, 2.0, len(knockout[0]))
    path = _write(tmp_path / "ev.hepmc3", knockout, weights)
    assert not list(tmp_path.glob(".*tmp"))  # written atomically: no temporary left behind
    with pyhepmc.open(path) as f:
        events = list(f)
    assert len(events) == len(weights)
    info = events[0].run_info
    attrs = _typed(info.attributes)
    assert [attrs[f"NuHepMC.Version.{k}"] for k in ("Major", "Minor", "Patch")] == ["1", "0", "0"]
    assert info.tools[0].name == "numl" and info.weight_names == ["CV"]
    assert float(attrs["NuHepMC.FluxAveragedTotalCrossSection"]) == pytest.approx(SIGMA * 1e36, rel=1e-12)
    assert float(attrs["NuHepMC.FluxAveragedTotalCrossSectionUncertainty"]) == pytest.approx(SIGMA_ERR * 1e36)
    assert attrs["NuHepMC.Units.CrossSection.Unit"] == "pb"
    assert attrs["NuHepMC.Units.CrossSection.TargetScale"] == "PerAtom"
    assert "G.C.2" in attrs["NuHepMC.Conventions"].split() and attrs["NuHepMC.ProcessIDs"] == "200"
    assert attrs["NuHepMC.ProcessInfo[200].Name"] == "CCQE"
    assert set(attrs["NuHepMC.ParticleStatusIDs"].split()) == {"1", "4", "20", "21"}
    assert set(attrs["NuHepMC.VertexStatusIDs"].split()) == {"1", "21"}
    for event, w in zip(events, weights, strict=True):
        assert event.weights[0] == pytest.approx(w) and event.momentum_unit == pyhepmc.Units.MEV
        assert event.attributes["signal_process_id"].astype(int) == 200
        by_status = {}
        for p in event.particles:
            by_status.setdefault(p.status, []).append(p.pid)
        assert by_status == {
            20: [ex.PDG_CARBON12],
            21: [ex.PDG_NEUTRON],
            1: [ex.PDG_CARBON11, ex.PDG_MUON, ex.PDG_PROTON],
            4: [ex.PDG_NUMU],
        }
        assert sorted(v.status for v in event.vertices) == [1, 21]


def test_written_file_reads_back_through_read_nuhepmc(knockout, tmp_path):
    enu, ev = knockout
    frame = read_nuhepmc(_write(tmp_path / "ev.hepmc", knockout))
    assert len(frame) == len(enu)
    np.testing.assert_allclose(frame["enu_truth"], enu, rtol=1e-12)
    assert frame["is_cc"].all() and (frame["proc_id"] == 200).all() and (frame["nu_pdg"] == 14).all()
    assert (frame["nu_dcosz_truth"] == 1.0).all()


def test_sample_action_writes_nuhepmc(generator_run, tmp_path):
    out = tmp_path / "events.hepmc"
    config = generator_run.config.copy(flow_file=generator_run.flow_file, n_generate=60, output_file=str(out))
    result = sample_events(config, Progress())
    assert result.output_file == str(out) and result.n_events == 60
    assert 1e-39 < result.cross_section < 1e-37 and 0 < result.cross_section_error < result.cross_section
    with pyhepmc.open(out) as f:
        events = list(f)
    attrs = _typed(events[0].run_info.attributes)
    assert float(attrs["NuHepMC.FluxAveragedTotalCrossSection"]) == pytest.approx(result.cross_section * 1e36)
    assert [e.weights[0] for e in events] == pytest.approx(result.events_head["weight"].tolist())
    frame = read_nuhepmc(out)
    np.testing.assert_allclose(frame["enu_truth"], result.events_head["enu"], rtol=1e-12)
    # the muon's energy and angle come back as written: E_mu = E_nu - omega
    muon = np.array([[p.momentum.e, p.momentum.pz] for e in events for p in e.particles if p.pid == 13])
    head = result.events_head
    np.testing.assert_allclose(muon[:, 0] / 1e3, head["enu"] - head["omega"], rtol=1e-9)
    k_mu = np.sqrt((head["enu"] - head["omega"]) ** 2 - MUON_MASS**2)
    np.testing.assert_allclose(muon[:, 1] / 1e3, k_mu * head["cos_mu"], atol=1e-9)


def test_emulator_mode_estimates_the_header_cross_section(generator_run, tmp_path):
    config = generator_run.config.copy(
        flow_file=generator_run.flow_file,
        n_generate=20,
        sample_mode="emulator",
        output_file=str(tmp_path / "emu.hepmc3"),
    )
    result = sample_events(config, Progress())
    assert result.cross_section > 0 and len(read_nuhepmc(result.output_file)) == 20
    assert torch.isfinite(torch.tensor(result.cross_section))
