"""--ours and --peers values: which configurations of each side to run.

An ours configuration is "PRECISION[+xla][+buckets][+keras_kernels][+lazy]": PRECISION fp32
(float32 policy) or bf16 (Keras mixed_bfloat16), xla = jit_compile=True, buckets = static length
buckets (--buckets) instead of always max_length, keras_kernels = Keras' own dropout, GELU,
attention, Dense and layer norm (CrossEncoder kernels=()) instead of the CrossEncoder default
kernels (esci_tf.models.kernels.KERNELS),
lazy = esci_tf LazyAdamW (row-wise embedding updates) instead of keras AdamW (training only).
A peer configuration is fp32 or bf16 (torch.autocast bfloat16).
"""

import dataclasses

PRECISIONS = ("fp32", "bf16")
OPTIONS = ("xla", "buckets", "keras_kernels", "lazy")
KERAS_POLICIES = {"fp32": "float32", "bf16": "mixed_bfloat16"}


@dataclasses.dataclass(frozen=True)
class OursConfig:
    precision: str
    xla: bool = False
    buckets: bool = False
    keras_kernels: bool = False
    lazy: bool = False

    @property
    def name(self) -> str:
        return "ours_" + "+".join([self.precision] + [o for o in OPTIONS if getattr(self, o)])

    @property
    def policy(self) -> str:
        return KERAS_POLICIES[self.precision]

    @property
    def kernels(self) -> tuple:
        """The CrossEncoder `kernels` of this configuration: () (Keras' own) with keras_kernels,
        else every esci_tf kernel."""
        from esci_tf.models.kernels import KERNELS

        return () if self.keras_kernels else KERNELS

    @property
    def description(self) -> str:
        parts = [f"Keras {self.policy}", "XLA" if self.xla else "no XLA",
                 "length buckets" if self.buckets else "static max_length",
                 "Keras kernels" if self.keras_kernels else "esci-tf fast kernels"]
        if self.lazy:
            parts.append("LazyAdamW")
        return ", ".join(parts)


def parse_ours(text: str) -> list:
    """"fp32+xla,bf16+buckets" -> [OursConfig, ...]."""
    configs = []
    for item in (v.strip() for v in text.split(",")):
        if not item:
            continue
        precision, *options = item.split("+")
        if precision not in PRECISIONS:
            raise ValueError(f"--ours {item!r}: precision must be one of {PRECISIONS}")
        unknown = [o for o in options if o not in OPTIONS]
        if unknown or len(set(options)) != len(options):
            raise ValueError(f"--ours {item!r}: options must be distinct ones of {OPTIONS}")
        configs.append(OursConfig(precision, *(o in options for o in OPTIONS)))
    if not configs:
        raise ValueError("--ours names no configuration")
    if len({c.name for c in configs}) != len(configs):
        raise ValueError(f"--ours {text!r} repeats a configuration")
    return configs


def parse_peers(text: str) -> list:
    """"fp32,bf16" -> ["fp32", "bf16"] (may be empty: no peer)."""
    peers = [v.strip() for v in text.split(",") if v.strip()]
    bad = [p for p in peers if p not in PRECISIONS]
    if bad or len(set(peers)) != len(peers):
        raise ValueError(f"--peers {text!r}: expected distinct values of {PRECISIONS}")
    return peers


def parse_run_flags(flag_values, positive: dict):
    """(model spec, ours configs, peer precisions, buckets) from a script's flags.

    `positive` names the script's count flags that must be >= 1 ({"--steps": 5, ...});
    a bad value raises absl's UsageError naming the flag.
    """
    from absl import app

    from bench import batching, models

    try:
        spec = models.get_spec(flag_values.model)
        ours = parse_ours(flag_values.ours)
        peers = parse_peers(flag_values.peers)
        buckets = batching.parse_buckets(flag_values.buckets, flag_values.max_length)
        bad = [name for name, value in positive.items() if value < 1]
        if bad:
            raise ValueError(f"{', '.join(positive)} must be >= 1 (got {', '.join(bad)} < 1)")
    except ValueError as e:
        raise app.UsageError(str(e)) from e
    return spec, ours, peers, buckets
