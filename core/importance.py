"""Which hyperparameters mattered: Optuna's importance evaluators, chosen by study size."""

from __future__ import annotations

from core import storage as S

# fANOVA's forests cost seconds above this many trials (~2 s at 185 with 16 trees, 13 s with the
# default 64, measured here); PED-ANOVA gives the same ranking in ~40 ms on large studies.
FANOVA_MAX_TRIALS = 60


def param_importances(study: str, storage_url: str | None, n_complete: int, mode: str) -> tuple[str, dict[str, float]]:
    """(method, importance per hyperparameter) over the study's complete trials.

    Args:
        n_complete: complete trials in the study (picks fANOVA up to FANOVA_MAX_TRIALS, else PED-ANOVA).
        mode: the study's mode; pareto studies are measured on accuracy, their first objective.
    """
    import optuna
    from optuna.importance import FanovaImportanceEvaluator, PedAnovaImportanceEvaluator, get_param_importances

    s = optuna.load_study(study_name=study, storage=S.open_storage(storage_url))
    target = (lambda t: t.values[0]) if mode == "pareto" else None
    if n_complete <= FANOVA_MAX_TRIALS:
        method, evaluator = "fANOVA", FanovaImportanceEvaluator(n_trees=16, seed=0)
    else:
        method, evaluator = "PED-ANOVA", PedAnovaImportanceEvaluator()
    imps = get_param_importances(s, target=target, evaluator=evaluator)
    return method, {k: float(v) for k, v in imps.items()}
