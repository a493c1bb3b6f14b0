"""Names of the model variants, importable without torch (for the CLI and the app)."""

VARIANT_NAMES = ("baseline", "fa", "guroi", "fa-guroi", "gusa", "fa-gusa", "attention-gate", "rga")
DEFAULT_VARIANT = "fa-gusa"

#: Variants whose attention map is the RoI branch's output ỹ; the others use Grad-CAM.
ROI_VARIANTS = ("guroi", "fa-guroi", "gusa", "fa-gusa", "rga")

DESCRIPTIONS = {
    "baseline": "Baseline (B): DenseNet-169 classifier",
    "fa": "B + FA: multi-depth feature aggregation",
    "guroi": "B + GuRoI: RoI branch trained jointly, not applied",
    "fa-guroi": "B + FA + GuRoI",
    "gusa": "B + GuSA: RoI map multiplies the activations",
    "fa-gusa": "B + FA + GuSA (proposed)",
    "attention-gate": "Attention gates (Schlemper et al. 2019), unsupervised",
    "rga": "Region guided attention (Son et al. 2018), implicit region supervision",
}

__all__ = ["VARIANT_NAMES", "DEFAULT_VARIANT", "ROI_VARIANTS", "DESCRIPTIONS"]
