"""``traineval demo``: the real executable on the quick run, plus the pieces against independent truth.

The two quick runs (one printing the table, one printing ``--json``) are shared by the tests
through module-scoped fixtures; everything else works on tiny models and data.
"""

from __future__ import annotations

import copy
import html
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn

import traineval as te
from traineval.demo.claims import ARTICLE_ENGLISH, ARTICLE_TITLE, CLAIMS, FIGURES, figures_under
from traineval.demo.data import CLASS_NAMES, blobs_dataset, shapes_dataset
from traineval.demo.experiments import _measure, _shared, c2_training_mode, c5_output_spread
from traineval.demo.experiments._context import Context, untrained_context
from traineval.demo.outcome import FAILS

ROOT = Path(__file__).resolve().parents[1]
IDS = ["C1", "C2", "C3", "C4", "C5", "C6", "C7", "C8", "T1", "T2"]
FIGURE_FILES = [f.file for f in FIGURES]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def _one_thread():
    """In-process tests use one CPU thread, as the demo does (fast and stable on a shared machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# a run of the real command, with sizes a few times smaller than --quick (seconds): for what does not
# depend on the numbers, e.g. the run without matplotlib
_TINY = ("from traineval.demo.runner import DemoConfig; "
         "DemoConfig.make = classmethod(lambda cls, **kw: DemoConfig(train_images=64, test_images=64, epochs=1, "
         "sweep_images=8, ae_images=32, ae_epochs=1, repeats=2, **kw)); ")


def _demo(*args: str, block_matplotlib: bool = False, tiny: bool = False) -> subprocess.CompletedProcess[str]:
    if block_matplotlib or tiny:
        code = ("import sys; " + ("sys.modules['matplotlib'] = None; " if block_matplotlib else "")
                + (_TINY if tiny else "")
                + f"from traineval.cli import main; raise SystemExit(main({['demo', *args]!r}))")
        cmd = [sys.executable, "-c", code]
    else:
        cmd = [sys.executable, "-m", "traineval", "demo", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path, dict]:
    out = tmp_path_factory.mktemp("demo") / "out"
    proc = _demo("--quick", "--seed", "0", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc, out, json.loads((out / "results.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def quick_again(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    """The same quick run again, printing JSON instead of the table."""
    out = tmp_path_factory.mktemp("demo2") / "out"
    proc = _demo("--quick", "--seed", "0", "--out", str(out), "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc, out


def _claims(results: dict) -> dict[str, dict]:
    return {c["id"]: c for c in results["claims"]}


# ------------------------------------------------------------------ the quick run, end to end
def test_quick_run_reports_every_claim_with_the_expected_verdict(quick):
    proc, _, results = quick
    claims = _claims(results)
    assert list(claims) == IDS
    verdicts = {cid: c["verdict"] for cid, c in claims.items()}
    # the article is imprecise on C3 (EMA, not whole-data statistics) and C7 (inverted dropout)
    assert verdicts == {cid: ("differs" if cid in ("C3", "C7") else "holds") for cid in IDS}
    for cid in IDS:
        assert cid in proc.stdout
        assert claims[cid]["measurement"] and claims[cid]["exact"] and claims[cid]["article"]
        assert claims[cid]["in_article"] is cid.startswith("C")
    assert "8 hold, 2 differ" in proc.stdout
    # the table names the article it measures (rich may wrap the title: compare without whitespace)
    flat = re.sub(r"[\s│┃]+", "", proc.stdout)
    assert re.sub(r"\s+", "", ARTICLE_TITLE + ARTICLE_ENGLISH) in flat.replace('("', "").replace('")', "")
    assert ARTICLE_TITLE in proc.stderr  # and so does the first line of the run
    assert "epoch 1/" in proc.stderr  # progress is visible while training


def test_eval_outputs_identical_train_outputs_differ(quick):
    c5 = _claims(quick[2])["C5"]["values"]
    assert c5["eval"]["identical_calls"] is True
    assert c5["eval"]["max_prob_range"] == 0
    assert c5["eval"]["inputs_with_changing_prediction"] == 0
    assert c5["train"]["identical_calls"] is False
    assert c5["train"]["max_prob_range"] > 0.05


def test_train_mode_accuracy_at_batch_size_one_is_well_below_eval(quick):
    c6 = _claims(quick[2])["C6"]["values"]
    sizes, train, ev = c6["batch_sizes"], c6["accuracy_train_mode"], c6["accuracy_eval_mode"]
    assert sizes[0] == 1 and sizes[-1] >= 64
    assert train[0] < ev[0] - 0.2
    assert train[0] < 0.5 * train[-1]  # the damage is from the small batch, not from training mode per se
    # eval mode does not depend on the batch size (at most one image flips through float rounding)
    assert max(ev) - min(ev) <= 1 / c6["images"] + 1e-9
    shift = c6["autoencoder_colour_shift_255"]
    assert shift["train_batch_1"] > 2 * shift["eval"]
    assert shift["train_batch_1"] > shift["train_batch_64"]


def test_running_statistics_change_in_train_passes_only(quick):
    results = quick[2]
    c4 = _claims(results)["C4"]["values"]
    n_test = results["config"]["test_images"]
    assert c4["eval_pass_unchanged"] is True
    for key, batches in (("train_pass_batch_64", math.ceil(n_test / 64)), ("train_pass_batch_1", n_test)):
        run = c4[key]
        assert run["batches_counted"] == batches
        assert run["mean_shift_std"] > 0 and run["var_change_rel"] > 0
        assert run["weights_unchanged"] is True
    # batches of one estimate the variance from one image: the running variance is hit far harder
    assert c4["train_pass_batch_1"]["var_change_rel"] > 5 * c4["train_pass_batch_64"]["var_change_rel"]
    t2 = _claims(results)["T2"]["values"]
    assert t2["training_flag_under_no_grad"] is True and t2["running_stats_changed"] is True


def test_dropout_rate_within_binomial_tolerance_and_inverted_scaling(quick):
    c7 = _claims(quick[2])["C7"]["values"]
    p, n = c7["p"], c7["units"]
    sigma = math.sqrt(p * (1 - p) / n)
    assert abs(c7["drop_rate"] - p) < 5 * sigma
    assert c7["kept_value"] == pytest.approx(1 / (1 - p), abs=1e-6)
    assert c7["eval_identity"] is True
    assert abs(c7["dropped_in_both_calls"] - p * p) < 5 * math.sqrt(p * p * (1 - p * p) / n)
    assert c7["cnn_kept_scale"] == pytest.approx([2.0, 2.0], abs=1e-4)
    c2 = _claims(quick[2])["C2"]["values"]
    m = c2["dropout_units"]
    assert abs(c2["dropout_rate"] - c2["dropout_p"]) < 5 * math.sqrt(0.25 / m)


def test_batchnorm_statistics_measurements(quick):
    claims = _claims(quick[2])
    c2, c3 = claims["C2"]["values"], claims["C3"]["values"]
    assert c2["bn_max_error_vs_batch_stats"] < 1e-4 < c2["bn_min_error_vs_running_stats"]
    assert c3["eval_max_error_vs_running_stats"] < 1e-4 < c3["eval_min_error_vs_batch_stats"]
    assert c3["buffers_unchanged_by_eval_passes"] is True
    for layer, before in c3["gap_before"].items():
        after = c3["gap_after_recalibration"][layer]
        assert after["mean_gap_std"] < 1e-3 and after["var_gap_rel"] < 1e-3  # float32 vs float64 reference
        assert before["var_gap_rel"] > 10 * after["var_gap_rel"]


def test_t1_functional_dropout_trap_and_te_check(quick):
    t1 = _claims(quick[2])["T1"]["values"]
    assert t1["calls_differ"] is True and t1["fixed_is_identity"] is True
    assert 0.4 < t1["eval_drop_rate"] < 0.6
    assert "TE214" in t1["te_check_codes_trap"]
    assert t1["te_check_codes_fixed"] == []


def test_figures_are_valid_nontrivial_pngs(quick):
    from matplotlib.image import imread

    out = quick[1]
    assert sorted(p.name for p in out.glob("*.png")) == sorted(FIGURE_FILES)
    for name in FIGURE_FILES:
        path = out / name
        assert path.read_bytes()[:8] == PNG_MAGIC, name
        img = imread(path)
        h, w = img.shape[:2]
        assert h >= 300 and w >= 500, (name, img.shape)
        rgb = img[..., :3].reshape(-1, 3)
        assert float(rgb.std()) > 0.05, name  # not a blank canvas
        colours = {tuple(px) for px in (rgb[:: max(1, len(rgb) // 20000)] * 255).round().astype(int).tolist()}
        assert len(colours) > 30, name


def test_report_html_is_self_contained_and_places_figures_as_the_registry_says(quick):
    out = quick[1]
    page = (out / "report.html").read_text(encoding="utf-8")
    assert page.count("data:image/png;base64,") == len(FIGURES)
    assert 'src="http' not in page and "src='http" not in page
    assert ARTICLE_TITLE in page and ARTICLE_ENGLISH in page
    sections = re.split(r"<h2 id='([CT]\d)'>", page)  # [top, id, section, id, section, ...]
    assert sections[1::2] == IDS
    by_section = {None: sections[0], **dict(zip(sections[1::2], sections[2::2], strict=True))}
    for figure in FIGURES:
        alt = f'alt="{html.escape(figure.caption)}"'
        assert page.count(alt) == 1, figure.file
        assert alt in by_section[figure.shown_under], figure.file
    for cid in IDS:
        said = "The article says:" if cid.startswith("C") else "Beyond the article:"
        assert said in by_section[cid]


def test_same_seed_gives_byte_identical_results_and_figures(quick, quick_again):
    _, out1, _ = quick
    proc2, out2 = quick_again
    assert (out1 / "results.json").read_bytes() == (out2 / "results.json").read_bytes()
    assert json.loads(proc2.stdout) == json.loads((out2 / "results.json").read_text(encoding="utf-8"))
    for name in FIGURE_FILES:
        assert (out1 / name).read_bytes() == (out2 / name).read_bytes(), name


def test_without_matplotlib_measures_and_says_how_to_get_figures(tmp_path):
    out = tmp_path / "out"
    proc = _demo("--out", str(out), "--json", block_matplotlib=True, tiny=True)
    assert proc.returncode in (0, 1), proc.stderr[-3000:]  # tiny sizes: an undertrained model may miss C6
    assert "figures need it: pip install matplotlib" in proc.stderr
    assert not list(out.glob("*.png"))
    assert "Figures were skipped" in (out / "report.html").read_text(encoding="utf-8")
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert json.loads(proc.stdout) == results
    assert [c["id"] for c in results["claims"]] == IDS
    assert proc.returncode == (1 if any(c["verdict"] == FAILS for c in results["claims"]) else 0)


def test_the_demo_marks_each_deliberate_mode_mistake_for_the_linter():
    """``traineval lint`` is clean on the demo, and every ``# noqa`` there hides a real finding (TE090)."""
    proc = subprocess.run([sys.executable, "-m", "traineval", "lint", "--extend-select", "TE090",
                           str(ROOT / "src" / "traineval" / "demo")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout
    for path in (ROOT / "src" / "traineval" / "demo").rglob("*.py"):
        for line in path.read_text(encoding="utf-8").splitlines():
            if "# noqa: TE" in line:  # each says why the mistake is deliberate
                assert re.search(r"# noqa: TE\d{3} - \S.{10,}", line), f"{path.name}: {line.strip()}"


def test_cli_out_is_a_file(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    proc = _demo("--out", str(afile))
    assert proc.returncode == 2
    assert f"--out {afile} is a file; pass a folder" in proc.stderr and "Traceback" not in proc.stderr
    assert afile.read_text() == "x"


@pytest.mark.parametrize(("args", "message"), [
    (["--seed", "-3"], "expected a number in [0, 2147483647], got -3"),
    (["--seed", "x"], "expected a whole number, got 'x'"),
    (["--threads", "0"], "expected a number of at least 1, got 0"),
])
def test_cli_bad_options(args, message, capsys, tmp_path):
    from traineval.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["demo", "--out", str(tmp_path / "never"), *args])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "never").exists()


# ------------------------------------------------------------------------------ the pieces
def test_shapes_dataset_deterministic_balanced_and_seed_dependent():
    x, y = shapes_dataset(80, seed=3)
    x2, y2 = shapes_dataset(80, seed=3)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    assert not torch.equal(x, shapes_dataset(80, seed=4)[0])
    assert torch.bincount(y, minlength=len(CLASS_NAMES)).tolist() == [10] * len(CLASS_NAMES)
    assert float(x.min()) >= 0 and float(x.max()) <= 1
    # colour is not the label: mean colour per class is close to the overall mean colour
    per_class = torch.stack([x[y == k].mean((0, 2, 3)) for k in range(len(CLASS_NAMES))])
    assert float((per_class - x.mean((0, 2, 3))).abs().max()) < 0.2
    state = torch.get_rng_state()
    blobs_dataset(4, seed=0)
    assert torch.equal(state, torch.get_rng_state())  # the global RNG is left alone


def _tiny_context(p: float = 0.5) -> Context:
    return untrained_context(0, dropout=p)


@pytest.fixture(scope="module")
def tiny_claims() -> tuple[Context, dict, list]:
    """Every registered claim run on an untrained context, with the context's models as they were before."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ctx = _tiny_context()
        before = {"cnn": copy.deepcopy(ctx.cnn.state_dict()),
                  "autoencoder": copy.deepcopy(ctx.autoencoder.state_dict()), "modes": te.modes(ctx.cnn)}
        return ctx, before, [spec.run(ctx) for spec in CLAIMS]
    finally:
        torch.set_num_threads(threads)


def test_population_statistics_match_an_independent_reference():
    ctx = _tiny_context()
    pop = _measure.population_statistics(ctx.cnn, ctx.x_train)
    # first BatchNorm: its input is the first convolution's output, whatever the mode
    conv = ctx.cnn.features[0][0]
    with torch.no_grad():
        first = nn.functional.conv2d(ctx.x_train.double(), conv.weight.double(), None, conv.stride, conv.padding)
    flat = first.transpose(0, 1).reshape(first.shape[1], -1)
    mean0, var0 = pop["features.0.1"]
    torch.testing.assert_close(mean0, flat.mean(1))
    torch.testing.assert_close(var0, flat.var(1, unbiased=True))
    # every layer: what te.recalibrate_batchnorm(order="layerwise") computes, a separate implementation
    recal = copy.deepcopy(ctx.cnn).double()
    te.recalibrate_batchnorm(recal, [ctx.x_train.double()[i:i + 32] for i in range(0, 96, 32)],
                             order="layerwise", progress=False)
    gaps = _measure.stats_gap(recal, pop)
    assert gaps["features.0.1"]["mean_gap_std"] < 1e-10 and gaps["features.0.1"]["var_gap_rel"] < 1e-10
    # deeper layers: the reference's upstream layers normalise with the biased whole-data variance
    # (training mode), eval mode with the unbiased one: a factor n/(n-1), n = 96*16*16 values here
    n = 96 * 16 * 16
    assert max(g["mean_gap_std"] for g in gaps.values()) < 4 / n
    assert max(g["var_gap_rel"] for g in gaps.values()) < 4 / n


def test_experiments_leave_the_trained_models_untouched(tiny_claims):
    ctx, before, claims = tiny_claims
    assert [c.id for c in claims] == IDS
    for k, v in ctx.cnn.state_dict().items():
        assert torch.equal(v, before["cnn"][k]), k
    for k, v in ctx.autoencoder.state_dict().items():
        assert torch.equal(v, before["autoencoder"][k]), k
    assert te.modes(ctx.cnn) == before["modes"]
    json.dumps([c.to_json() for c in claims])  # JSON-ready


def test_shared_measurements_do_not_depend_on_which_claim_asks_first():
    # C2 and C7 read the CNN's dropout; whoever asks first, the numbers and the caller's random state are the same
    a, b = _tiny_context(), _tiny_context()
    torch.manual_seed(5)
    state = torch.get_rng_state()
    first = _shared.dropout(a)
    assert torch.equal(state, torch.get_rng_state())  # the caller's random state is put back
    assert _shared.dropout(a) is first  # computed once per context
    _shared.normalisation(b)  # another order: BatchNorm first, then dropout
    assert _shared.dropout(b) == first


def test_verdicts_are_computed_not_fixed():
    # without dropout, training-mode outputs for the same batch are deterministic: C5 must not "hold"
    ctx = _tiny_context(p=0.0)
    assert c5_output_spread.measure(ctx).verdict == FAILS
    assert c2_training_mode.measure(ctx).verdict == FAILS


def test_registry_is_consistent():
    ids = [spec.id for spec in CLAIMS]
    assert ids == IDS
    assert all(spec.in_article is spec.id.startswith("C") for spec in CLAIMS)
    assert len({spec.title for spec in CLAIMS}) == len(CLAIMS)
    assert len(set(FIGURE_FILES)) == len(FIGURES)
    for figure in FIGURES:
        assert set(figure.reads) <= set(ids), figure.file
        assert figure.shown_under is None or figure.shown_under in figure.reads, figure.file
        assert figure.caption and not re.search(r"\b[CT]\d\b", figure.caption), figure.file
    assert [f.file for f in figures_under(None)] == ["overview.png"]


def _texts(fig) -> list[str]:
    out = [t.get_text() for t in fig.texts]
    for ax in fig.axes:
        out += [ax.get_title(), ax.get_xlabel(), ax.get_ylabel()]
        out += [t.get_text() for t in ax.get_xticklabels() + ax.texts]
        legend = ax.get_legend()
        out += [t.get_text() for t in legend.get_texts()] if legend else []
    return [t for t in out if t]


def test_every_panel_says_its_mode_and_no_label_uses_claim_ids(tiny_claims):
    from traineval.demo.figures._style import require_matplotlib, style

    require_matplotlib()
    import matplotlib.pyplot as plt

    claims = {c.id: c for c in tiny_claims[2]}
    with plt.rc_context():
        style(plt)
        for figure in FIGURES:
            fig = figure.draw(plt, claims)
            try:
                texts = _texts(fig)
                assert not [t for t in texts if re.search(r"\b[CT]\d\b", t)], (figure.file, texts)
                for ax in fig.axes:
                    if not ax.get_title():
                        continue  # image tiles and colour bars: their figure's or row's labels say the mode
                    panel = [ax.get_title(), ax.get_ylabel(), *[t.get_text() for t in ax.get_xticklabels()]]
                    legend = ax.get_legend()
                    panel += [t.get_text() for t in legend.get_texts()] if legend else []
                    assert any("train()" in t or "eval()" in t for t in panel), (figure.file, ax.get_title())
                if figure.file == "c2_c3_bn_statistics.png":
                    # the gaps after recalibration are ~1e-6 of those before: only a log axis shows both
                    assert fig.axes[1].get_yscale() == "log"
                    low, _ = fig.axes[1].get_ylim()
                    after = claims["C3"].values["gap_after_recalibration"]
                    assert low < 100 * min(g["var_gap_rel"] for g in after.values())
            finally:
                plt.close(fig)


def test_value_axis_is_logarithmic_only_across_decades():
    from traineval.demo.figures._style import require_matplotlib, value_axis

    require_matplotlib()
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    try:
        assert value_axis(ax, [1.8, 4e-4]) is True and ax.get_yscale() == "log"
        low, high = ax.get_ylim()
        assert low <= 4e-4 / 2 and high >= 1.8 * 10
        assert value_axis(ax, [0.0, 1.9, 31.9], headroom=1.1) is False and ax.get_yscale() == "linear"
        assert ax.get_ylim() == pytest.approx((0, 31.9 * 1.1))
    finally:
        plt.close(fig)


def test_runner_restores_global_rng_and_is_deterministic():
    from traineval.demo.runner import DemoConfig, run

    cfg = DemoConfig(train_images=64, test_images=64, epochs=1, sweep_images=8, ae_images=32, ae_epochs=1,
                     repeats=2)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    a = run(cfg).to_json()
    assert torch.equal(state, torch.get_rng_state())
    assert a == run(cfg).to_json()


def test_config_rejects_bad_values():
    from traineval.demo.runner import DemoConfig

    with pytest.raises(ValueError, match="train_images must be at least 64"):
        DemoConfig(train_images=10)
    with pytest.raises(ValueError, match="epochs must be at least 1, got 0"):
        DemoConfig(epochs=0)
    with pytest.raises(TypeError, match="expected an int for repeats, got float"):
        DemoConfig(repeats=2.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="expected an int for seed"):
        DemoConfig.make(seed="1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"seed must be in \[0, 2\*\*31\)"):
        DemoConfig.make(seed=-1)
