"""Learn: every hyperparameter and every health metric explained, from core's own definitions,
each tied to where its effect shows in the learner's study.

The text comes from ``core.search_space.HYPERPARAMETERS`` and ``core.health.METRIC_INFO`` (the
same definitions the form and the dashboard use), so it cannot drift from what the code does.
Each entry opens to a chart from the selected study: a tuned hyperparameter against
validation accuracy, or a health metric against accuracy. Charts are drawn only for the
entries that are open. Each hyperparameter also lists the user's one-knob experiments on it
(``app.views.experiment``), or says how to run one.
"""

from __future__ import annotations

import streamlit as st

from app import PAGE_CONFIGURE, PAGE_HEALTH
from app import figures as FIG
from app import format as FMT
from app import widgets as W
from app import state
from app.views.experiment import experiment_links
from core.config import MODE_HELP, PRUNER_HELP, PRUNING_MEASURED, SAMPLER_HELP, StudyConfig
from core.health import COMPOSITE_HELP, METRIC_INFO, WEIGHTS, evidence_sentences
from core.shift import DESCRIPTION as SHIFT_DESCRIPTION
from core.study import StudySummary, TrialRecord, best_record, epochs_spent
from core.search_space import HYPERPARAMETERS, Hyperparameter

APPLIES = {"image": "CNN (images)", "text": "LSTM (text)", "both": "CNN and LSTM"}
GROUP_TITLES = {
    "architecture": "Architecture: the shape of the network",
    "regularisation": "Regularisation: fighting overfitting",
    "optimisation": "Optimisation: how the weights are learned",
}

KEY_IDEAS = """
**Validation is for choosing, test is for reporting.** Every trial is scored on a validation
split, and the search optimises that score. Because the search *chooses* by it, the best
validation score is flattering. The test split is measured once per trial and never
optimised on: it is the honest estimate of how the model does on new data.

**Accuracy is not the whole story.** Two models with the same accuracy can differ a lot:
one may have half its neurons dead, layers whose weights barely move, a loss that spiked,
or a 20-point gap between training and validation accuracy. HPO Studio measures six
*health* metrics for every trial, and the **health-aware** and **pareto** modes let the
search weigh them. Whether health pays off on data that is a little different from the
test set (*shifted accuracy*) was measured; the Health metrics tab gives the numbers.
"""


def render_health_evidence() -> None:
    """The measured answer to "does health buy robustness?", from bench/bench_health_robustness.py."""
    sentences = evidence_sentences()
    st.markdown("**What health buys, measured.** " + SHIFT_DESCRIPTION)
    if not sentences:
        st.caption("Not measured in this installation (core/evidence/health_robustness.json is missing).")
        return
    for text in sentences:
        st.markdown("- " + text)


def render_experiments(hp: Hyperparameter, summaries: list[StudySummary]) -> None:
    """The user's one-knob experiments on this knob (buttons that open them), or how to run one."""
    if experiment_links(summaries, hp.name, key=f"learn-exp-{hp.name}"):
        st.caption(f"Your experiments on {hp.name}: each trained one trial again with only this knob changed.")
    else:
        st.caption(f"No experiment on {hp.name} yet. On the Health screen, open a trial and use *What does this "
                   "knob do?* to train it again with a few values of this knob, everything else fixed.")
        W.nav_link(PAGE_HEALTH, "Open a trial on the Health screen", ":material/science:")


def render_hyperparameter(hp: Hyperparameter, records: list[TrialRecord], study: str | None,
                          config: StudyConfig | None, tuned: set[str],
                          summaries: list[StudySummary] | None = None) -> None:
    exp = st.expander(f"{hp.title} · {APPLIES.get(hp.applies_to, hp.applies_to)}", key=f"learn-hp-{hp.name}",
                      on_change="rerun")
    with exp:
        st.markdown(f"**What it is.** {hp.explanation}")
        st.markdown(f"**What it does.** {hp.effect}")
        st.caption(f"Searched over {hp.describe_range()} · default {FMT.fmt_value(hp.default)} · `{hp.name}`")
        render_experiments(hp, summaries or [])
        if not exp.open:
            return  # the chart below is only worth drawing when someone looks
        if study is None:
            st.caption("Run a study to see this hyperparameter's effect on your own models.")
        elif hp.name not in tuned:
            fixed = (config.fixed or {}).get(hp.name, hp.default) if config else hp.default
            st.caption(f"Not tuned in **{FMT.plain(study)}** (fixed at {FMT.fmt_value(fixed)}). Tick it in Configure to see its effect.")
            W.nav_link(PAGE_CONFIGURE, "Configure a study that tunes it", ":material/tune:")
        else:
            fig = FIG.make_param_effect_figure(records, hp.name)
            if fig is None:
                st.caption(f"**{FMT.plain(study)}** needs two complete trials to show this.")
            else:
                st.plotly_chart(fig, key=f"learn-fig-{hp.name}")
                st.caption(f"Each point is a trial of **{FMT.plain(study)}**; colour is its health score."
                           + noise_caption(records))


def noise_caption(records: list[TrialRecord]) -> str:
    """How far apart two points must be to differ beyond sampling noise (from the study's best trial)."""
    done = [r for r in records if r.result is not None and r.result.val_samples and r.val_accuracy is not None]
    if not done:
        return ""
    top = max(done, key=lambda r: r.val_accuracy)
    return (f" Accuracy near the top is {FMT.noise_text(top.val_accuracy, top.result.val_samples)}: points closer "
            "than that are a tie, not an effect of this knob.")


def render_metric(key: str, records: list[TrialRecord], study: str | None, best: TrialRecord | None) -> None:
    info = METRIC_INFO[key]
    exp = st.expander(f"{info['title']} · weight {WEIGHTS.get(key, 0):.0%} in the health score", key=f"learn-metric-{key}",
                      on_change="rerun")
    with exp:
        st.markdown(f"**What it measures.** {info['meaning']}")
        st.markdown(f"**How.** {info['formula']}")
        st.markdown(f"**When it is low.** {info['low_means']}")
        if not exp.open or study is None:
            return
        fig = FIG.make_metric_effect_figure(records, key, best)
        if fig is None:
            st.caption(f"**{FMT.plain(study)}** needs two complete trials to show this.")
            return
        st.plotly_chart(fig, key=f"learn-metric-fig-{key}")
        if best is not None and best.result:
            st.caption(f"Best trial #{best.number} of **{FMT.plain(study)}**: {FMT.fmt_score((best.result.health or {}).get(key))}. "
                       "Points to the right are healthier; up is more accurate.")
        W.nav_link(PAGE_HEALTH, "Open the health dashboard", ":material/monitor_heart:")


def render_search(records: list[TrialRecord], study: str | None, config: StudyConfig | None) -> None:
    """How the search itself works: modes, samplers, pruning, with the selected study's own figures."""
    chosen = f" **{FMT.plain(study)}** uses" if study and config else None
    with st.expander("Modes: what the search optimises", key="learn-search-modes"):
        for mode, text in MODE_HELP.items():
            st.markdown(f"- **{mode}**: {text}")
        if chosen:
            st.caption(f"{chosen} *{config.mode}*.")
    with st.expander("Samplers: how the next trial is chosen", key="learn-search-samplers"):
        for name, text in SAMPLER_HELP.items():
            st.markdown(f"- **{name}**: {text}")
        st.markdown("Measured on a fixed digits space (bench/README.md): over 40 seeds of 30 trials, TPE's median "
                    "best validation accuracy was at least random search's at every trial length tried, and its "
                    "mean best higher.")
        if chosen:
            st.caption(f"{chosen} the *{config.sampler}* sampler.")
    exp = st.expander("Pruning: stopping hopeless trials early", key="learn-search-pruning", on_change="rerun")
    with exp:
        st.markdown(
            "After each epoch a trial reports its validation accuracy. The pruner compares it with what other "
            "trials reported at the same epoch and stops the trials that are clearly behind, so the epochs go "
            "to the promising ones. The risk is stopping a *slow starter* that would have ended best.")
        for name, text in PRUNER_HELP.items():
            st.markdown(f"- **{name}**: {text}")
        st.markdown(
            f"**It needs long enough trials** ({PRUNING_MEASURED}; bench/README.md): it needs two epochs to judge, "
            "and a short trial has few epochs left to save. Judging after one epoch saved more on some budgets and "
            "lost the best model on half the seeds on others.")
        if not exp.open or not study:
            return
        trained, unpruned = epochs_spent(records)
        pruned = sum(r.state == "PRUNED" for r in records)
        if pruned and unpruned:
            st.caption(f"In **{FMT.plain(study)}**: {pruned} trial{'s' if pruned != 1 else ''} pruned; {trained} epochs "
                       f"trained of {unpruned} ({100 * (unpruned - trained) / unpruned:.0f} % saved).")
        elif config is not None:
            st.caption(f"No trial of **{FMT.plain(study)}** was pruned (pruner: {config.pruner}, {config.epochs} epochs per trial).")
        fig = FIG.make_intermediate_figure(records)
        if fig is not None:
            st.plotly_chart(fig, key="learn-search-pruning-fig")
            st.caption("Each line is a trial's validation accuracy after each epoch; dotted lines were pruned.")


def main() -> None:
    st.title("Learn")
    st.caption("What each knob does and what each health metric means, shown on your own study.")
    with st.container(border=True):
        st.markdown(KEY_IDEAS)

    summaries = state.list_studies()
    study = None
    records: list[TrialRecord] = []
    config = None
    if summaries:
        study = W.render_study_picker(summaries, key="learn-study", label="Illustrate with study")
        summary = next(s for s in summaries if s.name == study)
        config = summary.config
        try:
            records = state.read_records(study) if study else []
        except KeyError:
            records = []
        if study:
            W.follow_study(study, records, summary, "the charts")
    else:
        st.caption("No study yet: the explanations are below; charts appear once you run one.")
    best = best_record(records, config)
    tuned = set(FMT.tuned_names(config, records)) if study else set()
    kind = None
    if config is not None:
        try:
            kind = config.kind
        except Exception:  # noqa: BLE001 - unknown data set: show every hyperparameter
            kind = None

    tab_hp, tab_health, tab_search = st.tabs(["Hyperparameters", "Health metrics", "Search and pruning"])
    with tab_hp:
        if study and tuned:
            st.caption(f"Tuned in **{FMT.plain(study)}**: " + ", ".join(sorted(tuned)))
        for group in ("architecture", "regularisation", "optimisation"):
            st.subheader(GROUP_TITLES[group])
            for hp in HYPERPARAMETERS.values():
                if hp.group == group and (kind is None or hp.applies(kind)):
                    render_hyperparameter(hp, records, study, config, tuned, summaries)
        if kind is not None:
            st.caption(f"Showing the hyperparameters of {kind} models, the kind **{FMT.plain(study)}** trains.")
    with tab_health:
        st.markdown(
            f"The **health score** combines six metrics, each from 0 (unhealthy) to 1 (healthy). {COMPOSITE_HELP} "
            "A metric that could not be measured is left out and the other weights are rescaled."
        )
        render_health_evidence()
        for key in METRIC_INFO:
            render_metric(key, records, study, best)
    with tab_search:
        render_search(records, study, config)


main()
