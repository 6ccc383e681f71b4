"""Latency backends: one narrow interface, one thin class per runtime.

A backend knows three things only: what it needs in order to run here
(:meth:`Backend.missing`), which device it runs on (:meth:`Backend.device_name`),
and how to turn a module and its inputs into a callable that runs one
inference (:meth:`Backend.prepare`). Inputs, threads, warm-up, timing,
statistics, caching and failure handling are shared (:mod:`nas.latency.measurement`),
so the four backends differ in nothing but the runtime they drive.

Example:
    >>> from nas.latency.backends import get_backend
    >>> get_backend("torch").missing() is None
    True
"""

from __future__ import annotations

import contextlib
import importlib.util
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from nas.ir.errors import NASError
from nas.latency.device import cpu_device_name, gpu_name
from nas.latency.timing import CudaEventTimer, PerfCounterTimer, Run, Timer
from nas.passes.onnx import ONNX_OPSET, feeds, to_onnx

PRECISIONS = ("fp32", "fp16", "bf16")
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}

AUTO_ORDER = ("tensorrt", "cuda", "onnxruntime", "torch")
"""What ``backend="auto"`` tries, best first: the GPU reference, then PyTorch
on the GPU, then the CPU deployment runtime, then PyTorch on the CPU."""


@dataclass(frozen=True)
class Settings:
    """How to prepare a network: the precision, the backend's mode, and the
    CPU threads it may use (``None``: the backend does not use CPU threads).

    One object rather than loose arguments, so that a setting added later
    (a workspace size, an optimisation level) does not change every backend.
    """

    precision: str = "fp32"
    mode: str = "default"
    threads: int | None = None


class BuildFailed(Exception):
    """A backend could not turn the network into something runnable (export,
    session creation, engine build); its message is the reason reported."""


class Backend(ABC):
    """One runtime on one device.

    Subclasses set ``name``, ``precisions`` and ``modes`` (the first mode is
    the default) and implement :meth:`missing`, :meth:`device_name` and
    :meth:`prepare`; the other methods are hooks with sensible defaults.
    """

    name: ClassVar[str]
    precisions: ClassVar[tuple[str, ...]] = PRECISIONS
    modes: ClassVar[tuple[str, ...]] = ("default",)
    uses_threads: ClassVar[bool] = False
    """Whether the CPU thread count shapes its timings (and so is a condition)."""

    @abstractmethod
    def missing(self) -> str | None:
        """What this machine lacks for this backend (a library, a device), or
        ``None`` if it can run here. Cheap: no compilation, no device work."""

    @abstractmethod
    def device_name(self, mode: str) -> str:
        """The device that ``mode`` runs on, as it appears in measurements."""

    @abstractmethod
    def prepare(self, module: torch.nn.Module, inputs: Sequence[torch.Tensor], settings: Settings) -> Run:
        """Compile ``module`` (eval mode, float32, on the CPU) for this runtime
        and return a callable that runs one inference on ``inputs`` (float32,
        on the CPU, with the batch dimension), already bound. Thread counts
        of torch itself are set by the caller; a runtime with its own pool
        (ONNX Runtime) sizes it from ``settings.threads``.

        Raises:
            BuildFailed: the runtime cannot take this network (the message
                says why); any other exception is reported as a failure too.
        """

    # -- hooks ----------------------------------------------------------------

    def default_mode(self) -> str:
        return self.modes[0]

    def mode_missing(self, mode: str) -> str | None:
        """What ``mode`` lacks here beyond :meth:`missing`, or ``None``."""
        return None

    def uses_gpu(self, mode: str) -> bool:
        return False

    def versions(self, mode: str) -> dict[str, str]:
        """Library versions that can change its timings (part of the cache key)."""
        return {"torch": torch.__version__}

    def timer(self, mode: str) -> Timer:
        return PerfCounterTimer()

    def context(self) -> contextlib.AbstractContextManager[Any]:
        """Around preparing and timing: no autograd bookkeeping in inference."""
        return torch.inference_mode()

    def release(self) -> None:  # noqa: B027 (a no-op hook, not an abstract method)
        """After a measurement: give back what the runtime holds (GPU memory)."""


def _cast(module: torch.nn.Module, inputs: Sequence[torch.Tensor], precision: str, device: str = "cpu") -> Any:
    dtype = DTYPES[precision]
    module = module.to(device=device, dtype=dtype)
    xs = [x.to(device=device, dtype=dtype) if x.is_floating_point() else x.to(device) for x in inputs]
    return module, xs


def _cuda_missing() -> str | None:
    if not torch.cuda.is_available():
        built = torch.version.cuda
        return "no CUDA device (torch.cuda.is_available() is False" + (
            ")" if built else f"; this torch {torch.__version__} is a CPU-only build)"
        )
    return None


def _cuda_versions() -> dict[str, str]:
    return {
        "torch": torch.__version__,
        "cuda": str(torch.version.cuda),
        "cudnn": str(torch.backends.cudnn.version()),
    }


class TorchBackend(Backend):
    """PyTorch eager on the CPU with a fixed thread count; ``mode="compile"``
    runs ``torch.compile`` (inductor) instead."""

    name = "torch"
    modes = ("eager", "compile")
    uses_threads = True

    def missing(self) -> str | None:
        return None

    def device_name(self, mode: str) -> str:
        return cpu_device_name()

    def prepare(self, module: torch.nn.Module, inputs: Sequence[torch.Tensor], settings: Settings) -> Run:
        module, xs = _cast(module, inputs, settings.precision)
        if settings.mode == "compile":
            try:
                compiled = torch.compile(module, dynamic=False)
                compiled(*xs)  # compiles now, so that a compiler failure is a build failure
            except Exception as e:
                raise BuildFailed(f"torch.compile failed: {error_line(e)}") from e
            return lambda: compiled(*xs)
        return lambda: module(*xs)


class _GpuBackend(Backend):
    """What every backend that runs on the CUDA device shares: the device's
    name, its library versions, and CUDA-event timing."""

    def missing(self) -> str | None:
        return _cuda_missing()

    def device_name(self, mode: str) -> str:
        return gpu_name()

    def uses_gpu(self, mode: str) -> bool:
        return True

    def versions(self, mode: str) -> dict[str, str]:
        return _cuda_versions()

    def timer(self, mode: str) -> Timer:
        return CudaEventTimer()


class CudaBackend(_GpuBackend):
    """PyTorch on the GPU: replayed as a CUDA graph (default; no Python or
    launch overhead between kernels) or eager."""

    name = "cuda"
    modes = ("cuda_graph", "eager")

    @contextlib.contextmanager
    def context(self) -> Iterator[None]:
        # Shapes are static, so let cuDNN time its algorithms during warm-up
        # and keep the fastest, as a deployment would (TensorRT always does).
        saved = torch.backends.cudnn.benchmark
        torch.backends.cudnn.benchmark = True
        try:
            with torch.inference_mode():
                yield
        finally:
            torch.backends.cudnn.benchmark = saved

    def prepare(self, module: torch.nn.Module, inputs: Sequence[torch.Tensor], settings: Settings) -> Run:
        module, xs = _cast(module, inputs, settings.precision, "cuda")
        if settings.mode == "eager":
            return lambda: module(*xs)
        # Capture after a few runs on a side stream, as torch.cuda.graphs asks:
        # lazy initialisation (cuDNN autotuning, workspaces) must not be captured.
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                module(*xs)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                outputs = module(*xs)
        except Exception as e:
            raise BuildFailed(f"CUDA graph capture failed: {error_line(e)}") from e

        def replay() -> Any:
            graph.replay()
            return outputs

        return replay

    def release(self) -> None:
        torch.cuda.empty_cache()


_ORT_PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}


class OnnxRuntimeBackend(Backend):
    """Export to ONNX (opset :data:`ONNX_OPSET`) and time an ONNX Runtime
    session; the mode names the execution provider (``cpu``, ``cuda``,
    ``tensorrt``), by default the best one present with its hardware."""

    name = "onnxruntime"
    precisions = ("fp32", "fp16")  # numpy, which feeds the session, has no bfloat16
    modes = ("cpu", "cuda", "tensorrt")
    uses_threads = True

    def missing(self) -> str | None:
        if importlib.util.find_spec("onnxruntime") is None:
            return "onnxruntime is not installed (pip install 'nas[onnx]')"
        return None

    def default_mode(self) -> str:
        for mode in ("tensorrt", "cuda"):
            if self.mode_missing(mode) is None:
                return mode
        return "cpu"

    def mode_missing(self, mode: str) -> str | None:
        if mode == "cpu":
            return None
        import onnxruntime

        if _ORT_PROVIDERS[mode] not in onnxruntime.get_available_providers():
            present = ", ".join(onnxruntime.get_available_providers())
            return f"this onnxruntime has no {_ORT_PROVIDERS[mode]} (it has {present})"
        return _cuda_missing()

    def device_name(self, mode: str) -> str:
        return cpu_device_name() if mode == "cpu" else gpu_name()

    def uses_gpu(self, mode: str) -> bool:
        return mode != "cpu"

    def versions(self, mode: str) -> dict[str, str]:
        import onnxruntime

        base = {"torch": torch.__version__} if mode == "cpu" else _cuda_versions()
        return {**base, "onnxruntime": onnxruntime.__version__, "onnx_opset": str(ONNX_OPSET)}

    def prepare(self, module: torch.nn.Module, inputs: Sequence[torch.Tensor], settings: Settings) -> Run:
        import onnxruntime

        mode = settings.mode
        module, xs = _cast(module, inputs, settings.precision)
        model = export_onnx(module, xs)
        options = onnxruntime.SessionOptions()
        # One operator at a time on a fixed pool: the threads stated in the
        # conditions are the threads used.
        options.intra_op_num_threads = settings.threads or 0
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        providers: list[Any] = ["CPUExecutionProvider"]
        if mode == "cuda":
            providers = ["CUDAExecutionProvider", *providers]
        elif mode == "tensorrt":
            trt = ("TensorrtExecutionProvider", {"trt_fp16_enable": settings.precision == "fp16"})
            providers = [trt, "CUDAExecutionProvider", *providers]
        try:
            session = onnxruntime.InferenceSession(model, options, providers=providers)
        except Exception as e:
            raise BuildFailed(f"ONNX Runtime session creation failed: {error_line(e)}") from e
        given = feeds([spec.name for spec in session.get_inputs()], [x.numpy() for x in xs])
        return lambda: session.run(None, given)


def export_onnx(module: torch.nn.Module, inputs: Sequence[torch.Tensor]) -> bytes:
    """The ONNX model of ``module`` at these inputs' static shapes (:func:`nas.passes.onnx.to_onnx`).

    Raises:
        BuildFailed: the exporter cannot express the network.
    """
    try:
        return to_onnx(module, inputs, dynamic_batch=False)
    except Exception as e:
        raise BuildFailed(f"ONNX export failed: {error_line(e)}") from e


class TensorRTBackend(_GpuBackend):
    """torch-tensorrt's dynamo path: a TensorRT engine for a static input
    shape, timed with CUDA events. ``mode="full"`` (default) requires the
    whole network in TensorRT, so an unsupported layer is a failed build
    rather than a silent fall-back to PyTorch; ``partitioned`` allows it."""

    name = "tensorrt"
    precisions = ("fp32", "fp16")
    modes = ("full", "partitioned")

    def missing(self) -> str | None:
        if importlib.util.find_spec("torch_tensorrt") is None:
            return "torch_tensorrt is not installed (pip install 'nas[tensorrt]', on a machine with an NVIDIA GPU)"
        return super().missing()

    def versions(self, mode: str) -> dict[str, str]:
        import torch_tensorrt

        found = {**super().versions(mode), "torch_tensorrt": str(torch_tensorrt.__version__)}
        with contextlib.suppress(ImportError):
            import tensorrt

            found["tensorrt"] = str(tensorrt.__version__)
        return found

    def context(self) -> contextlib.AbstractContextManager[Any]:
        return torch.no_grad()  # torch.export, inside torch-tensorrt, wants autograd-aware tensors

    def prepare(self, module: torch.nn.Module, inputs: Sequence[torch.Tensor], settings: Settings) -> Run:
        import torch_tensorrt

        module, xs = _cast(module, inputs, settings.precision, "cuda")
        try:
            engine = torch_tensorrt.compile(
                module,
                ir="dynamo",
                inputs=xs,
                enabled_precisions={DTYPES[settings.precision]},
                require_full_compilation=settings.mode == "full",
                min_block_size=1,
                pass_through_build_failures=True,
            )
        except Exception as e:
            raise BuildFailed(f"TensorRT engine build failed: {error_line(e)}") from e
        return lambda: engine(*xs)

    def release(self) -> None:
        torch.cuda.empty_cache()


BACKENDS: dict[str, Callable[[], Backend]] = {
    "torch": TorchBackend,
    "cuda": CudaBackend,
    "onnxruntime": OnnxRuntimeBackend,
    "tensorrt": TensorRTBackend,
}
"""The backends by name; ``nas latency --backend`` accepts these and ``auto``."""


def available_backends() -> list[str]:
    """The backends that can run on this machine, best first."""
    return [name for name in AUTO_ORDER if BACKENDS[name]().missing() is None]


def get_backend(name: str) -> Backend:
    """The backend called ``name`` (``"auto"``: the best available one).

    Raises:
        NASError: an unknown name, or a backend whose library or hardware
            is missing here (saying what, and which backends are available).
    """
    if name == "auto":
        return BACKENDS[available_backends()[0]]()  # torch is always available
    if name not in BACKENDS:
        raise NASError(
            f"unknown latency backend '{name}'", field="backend", hint=f"use one of auto, {', '.join(AUTO_ORDER)}"
        )
    backend = BACKENDS[name]()
    reason = backend.missing()
    if reason is not None:
        raise NASError(
            f"backend '{name}' is not available here: {reason}",
            field="backend",
            hint=f"available here: {', '.join(available_backends())}",
        )
    return backend


def error_line(error: BaseException, limit: int = 400) -> str:
    """An exception as one short line: runtimes print pages (TensorRT logs,
    ONNX Runtime stack dumps); the first meaningful line names the problem."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = f"{type(error).__name__}: {lines[0] if lines else ''}".rstrip(": ")
    return text if len(text) <= limit else text[: limit - 3] + "..."


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run with ``torch.set_num_threads(threads)``, restoring the old count after."""
    saved = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(saved)
