"""The device setting, and train.precision: auto resolves to bf16 where the device computes it natively,
fp32 elsewhere."""

import pytest
import torch

from aime.runtime import device as dev
from aime.runtime.device import Precision, cpu_bf16, cpu_flags, resolve_device, resolve_precision

CPU = torch.device("cpu")


@pytest.mark.parametrize("available", [True, False])
def test_auto_device_is_cuda_when_present_and_a_named_device_is_itself(monkeypatch, available):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: available)
    assert resolve_device("auto") == torch.device("cuda" if available else "cpu")
    assert resolve_device("cpu") == CPU and resolve_device("cuda:1") == torch.device("cuda", 1)


def test_cpu_flags_come_from_the_flags_line_of_proc_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text(
        "processor\t: 0\nmodel name\t: Xeon\nflags\t\t: fpu sse avx512f amx_bf16 avx512_bf16\n"
        "processor\t: 1\nflags\t\t: fpu\n"
    )
    assert cpu_flags(info) == {"fpu", "sse", "avx512f", "amx_bf16", "avx512_bf16"}
    assert cpu_flags(tmp_path / "missing") == set()


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ({"avx512f", "amx_bf16", "avx512_bf16"}, "CPU AMX"),
        ({"avx512f", "avx512_bf16"}, "CPU AVX512-BF16"),
        ({"avx512f", "avx2"}, None),
        (set(), None),
    ],
)
def test_cpu_bf16_names_the_best_native_unit(flags, expected):
    assert cpu_bf16(flags) == expected


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ({"amx_bf16"}, Precision("bf16", "CPU AMX")),
        ({"avx512_bf16"}, Precision("bf16", "CPU AVX512-BF16")),
        ({"avx2"}, Precision("fp32", "auto: no native bf16 on this cpu")),
    ],
)
def test_auto_on_cpu_follows_the_flags(flags, expected):
    assert resolve_precision("auto", CPU, flags) == expected


def test_auto_reads_the_machine_when_no_flags_are_given(monkeypatch):
    monkeypatch.setattr(dev, "cpu_flags", lambda path=dev.CPUINFO: set())
    monkeypatch.setattr(dev, "torch_cpu_flags", lambda: set())
    assert resolve_precision("auto", CPU).name == "fp32"
    monkeypatch.setattr(dev, "torch_cpu_flags", lambda: {"avx512_bf16"})  # torch's probe alone suffices
    assert resolve_precision("auto", CPU) == Precision("bf16", "CPU AVX512-BF16")
    monkeypatch.setattr(dev, "cpu_flags", lambda path=dev.CPUINFO: {"amx_bf16"})
    assert str(resolve_precision("auto", CPU)) == "bf16 (CPU AMX)"


@pytest.mark.parametrize(("supported", "expected"), [(True, "bf16"), (False, "fp32")])
def test_auto_on_cuda_asks_torch_whether_the_gpu_has_bf16(monkeypatch, supported, expected):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: supported)
    resolved = resolve_precision("auto", torch.device("cuda"), flags={"amx_bf16"})  # the CPU does not matter
    assert resolved.name == expected and resolved.autocast == (expected == "bf16")


def test_explicit_settings_win_over_the_hardware():
    assert resolve_precision("fp32", CPU, {"amx_bf16"}) == Precision("fp32", "train.precision=fp32")
    emulated = resolve_precision("bf16", CPU, {"avx2"})
    assert emulated.name == "bf16" and "emulated" in emulated.reason
    assert resolve_precision("bf16", "cpu", {"amx_bf16"}) == Precision("bf16", "CPU AMX")


def test_an_unknown_precision_names_the_allowed_ones():
    with pytest.raises(ValueError, match="auto, fp32, bf16.*'fp16'"):
        resolve_precision("fp16", CPU, set())


@pytest.fixture
def process_settings(monkeypatch):
    """Record the CPU settings instead of applying them; restore cudnn.benchmark afterwards."""
    from aime.runtime import allocator, denormals

    calls = []
    monkeypatch.setattr(denormals, "flush_denormals", lambda: calls.append("denormals") or True)
    monkeypatch.setattr(allocator, "retain_freed_memory", lambda: calls.append("allocator") or True)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    return calls


def test_cpu_tuning_applies_on_cpu_only(process_settings):
    assert dev.configure_process("cpu") == ["denormals flushed", "freed memory retained"]
    assert process_settings == ["denormals", "allocator"] and not torch.backends.cudnn.benchmark


def test_cuda_gets_cudnn_benchmark_and_no_cpu_tuning(process_settings):
    assert dev.configure_process(torch.device("cuda", 0)) == ["cudnn.benchmark"]
    assert process_settings == [] and torch.backends.cudnn.benchmark
