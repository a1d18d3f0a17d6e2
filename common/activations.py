"""Names of the activation functions every framework implements (each in its ``layers_*`` module)."""

ACTIVATIONS = (
    "gelu",  # exact, erf based
    "gelu_python",  # the same function
    "gelu_new",  # tanh approximation
    "gelu_pytorch_tanh",  # the same tanh approximation
    "gelu_fast",  # tanh approximation, HF's reordered constants
    "quick_gelu",  # x * sigmoid(1.702 x)
    "relu",
    "silu",
    "swish",  # the same as silu
    "tanh",
)
