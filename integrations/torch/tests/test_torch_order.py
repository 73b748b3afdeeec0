"""Backward order (closest to the loss first) is the order autograd accumulates the gradients in:
modules used through functionals (MultiheadAttention's out_proj), ParameterList entries and
parameters of a container used after its children are ranked where backward reaches them."""

from __future__ import annotations

import torch

from fastmoments_torch import GradientMonitor


class _NaNGrad(torch.autograd.Function):
    """Identity forward; the gradient flowing back through it becomes NaN."""

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g):
        return g * float("nan")


class _Encoder(torch.nn.Module):
    def __init__(self):
        super().__init__()
        layer = torch.nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True)
        self.enc = torch.nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = torch.nn.Linear(16, 3)

    def forward(self, x):
        return self.head(self.enc(x))


def _observe_once(model, loss_of, policy="skip"):
    mon = GradientMonitor(model, report_every=None, on_nonfinite=policy, warn=False)
    loss_of(model(torch.randn(2, 5, 16) if isinstance(model, _Encoder) else torch.randn(4, 6))).backward()
    bad = mon.observe()
    mon.report()
    return mon, bad


def test_transformer_nan_from_the_loss_starts_at_the_head():
    mon, bad = _observe_once(_Encoder(), lambda out: (out * float("nan")).sum())
    assert mon.last_report.nonfinite_origin["layer"] == "head"
    assert set(list(bad)[:2]) == {"head.weight", "head.bias"}
    layers = [x["layer"] for x in mon.last_report.layers]
    # out_proj runs after in_proj (self_attn) and before norm1, inside every encoder layer.
    for i in (0, 1):
        assert (layers.index(f"enc/layers/{i}/self_attn") < layers.index(f"enc/layers/{i}/self_attn/out_proj")
                < layers.index(f"enc/layers/{i}/norm1")), layers
    assert layers[-1] == "head"


def test_transformer_nan_injected_in_one_layer():
    model = _Encoder()
    model.enc.layers[1].linear1.register_forward_hook(lambda mod, args, out: _NaNGrad.apply(out))
    mon, bad = _observe_once(model, lambda out: out.sum())
    # linear2, norm2 of layer 1 and the head stay finite; linear1 is where NaN starts.
    assert mon.last_report.nonfinite_origin["layer"] == "enc/layers/1/linear1"
    assert next(iter(bad)).startswith("enc.layers.1.linear1.")
    assert "enc.layers.1.linear2.weight" not in bad and "head.weight" not in bad
    assert "enc.layers.0.self_attn.out_proj.weight" in bad


class _Scaled(torch.nn.Module):
    """Declared in the reverse of their use; a root-level scale applied last (like logit_scale)."""

    def __init__(self):
        super().__init__()
        self.head = torch.nn.Linear(6, 3)
        self.body = torch.nn.Linear(6, 6)
        self.scale = torch.nn.Parameter(torch.ones(()))

    def forward(self, x):
        return self.head(torch.relu(self.body(x))) * self.scale


def test_root_scale_used_last_is_closest_to_the_loss():
    mon, bad = _observe_once(_Scaled(), lambda out: (out * float("nan")).sum())
    assert mon.last_report.nonfinite_origin["layer"] == "(root)"
    assert list(bad)[0] == "scale"
    assert [x["layer"] for x in mon.last_report.layers] == ["body", "head", "(root)"]


def test_root_scale_raise_names_the_head_first_when_nan_starts_there():
    model = _Scaled()
    model.head.register_forward_hook(lambda mod, args, out: _NaNGrad.apply(out))
    mon, bad = _observe_once(model, lambda out: out.sum())
    assert mon.last_report.nonfinite_origin["layer"] == "head"
    assert "scale" not in bad and list(bad)[0].startswith("head.")


class _Chain(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.out = torch.nn.Linear(6, 2)
        self.ws = torch.nn.ParameterList([torch.nn.Parameter(torch.randn(6, 6) * 0.1) for _ in range(3)])

    def forward(self, x):
        for w in self.ws:
            x = x @ w
        return self.out(x)


def test_parameter_list_in_backward_order():
    model = _Chain()
    mon, bad = _observe_once(model, lambda out: (out * float("nan")).sum())
    assert set(list(bad)[:2]) == {"out.weight", "out.bias"}  # bias first: as autograd accumulates them
    assert list(bad)[2:] == ["ws.2", "ws.1", "ws.0"]
    assert mon.last_report.nonfinite_origin["layer"] == "out"


def test_order_hooks_removed_after_the_first_observation_and_by_detach():
    model = _Scaled()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    mon = GradientMonitor(model, report_every=None, warn=False).attach(opt)
    assert any(p._post_accumulate_grad_hooks for p in model.parameters())
    model(torch.randn(4, 6)).sum().backward()
    opt.step()
    assert not any(p._post_accumulate_grad_hooks for p in model.parameters())
    assert not any(m._forward_pre_hooks for m in model.modules())
    mon2 = GradientMonitor(model)
    mon2.detach()
    assert not any(p._post_accumulate_grad_hooks for p in model.parameters())


def test_no_backward_yet_falls_back_then_records():
    # Created after a backward: the first observation has no recorded order (entries' order);
    # the next backward records it.
    model = _Scaled()
    (model(torch.randn(4, 6)) * float("nan")).sum().backward()
    mon = GradientMonitor(model, report_every=None, on_nonfinite="skip", warn=False)
    mon.observe()
    model.zero_grad()
    (model(torch.randn(4, 6)) * float("nan")).sum().backward()
    bad = mon.observe()
    assert list(bad)[0] == "scale"


def test_model_saves_scripts_and_copies_with_the_monitor_watching():
    import copy
    import io

    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    mon = GradientMonitor(model, report_every=None, warn=False).attach(opt)  # hooks not yet removed
    buf = io.BytesIO()
    torch.save(model, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=False)
    assert isinstance(loaded, torch.nn.Sequential)
    copy.deepcopy(model)
    torch.jit.script(model)
    torch.jit.trace(model, torch.randn(1, 4))
    mon.detach()
    assert not any(p._post_accumulate_grad_hooks for p in model.parameters())
    assert not any(m._forward_pre_hooks for m in model.modules())
