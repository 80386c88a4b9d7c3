"""Self-Tuning Networks (MacKay, Vicol, Lorraine, Duvenaud, Grosse 2019): the weights as a learned
structured best response ŵ(λ), built from gated layers, trained on the training loss with λ
perturbed, alternating with steps on λ through ŵ on the validation loss.

`layers`: the gated linear layer; `method`: STN as a hypergradient method of `bilevel` (`method=stn`,
a linear model's response, checked on `ridge`); `ridge`: what it converges to there in closed form;
`mlp`: an MLP of gated layers whose dropout rates and weight decay STN tunes, and random search.
"""

from bilevel.stn.layers import (
    GatedLinear,
    gated_linear,
    gated_linear_init,
    gated_weight,
    gated_weight_sq_norm,
)
from bilevel.stn.method import SelfTuningNetwork
from bilevel.stn.ridge import (
    ResponseCheck,
    bias_curves,
    check_response,
    response_error,
    stn_lambda,
    stn_optimum,
    stn_sigma,
    val_curvature,
)

__all__ = [
    "GatedLinear",
    "ResponseCheck",
    "SelfTuningNetwork",
    "bias_curves",
    "check_response",
    "gated_linear",
    "gated_linear_init",
    "gated_weight",
    "gated_weight_sq_norm",
    "response_error",
    "stn_lambda",
    "stn_optimum",
    "stn_sigma",
    "val_curvature",
]
