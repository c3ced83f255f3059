import torch
import torch.nn as nn


def build():
    return nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5))


def export_bad():
    model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5))
    return torch.jit.trace(model, torch.ones(1, 4))  # TE010


def export_bad_fx():
    model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
    model.train()
    return torch.fx.symbolic_trace(model)  # TE010


def export_bad_export():
    model = nn.Sequential(nn.Linear(4, 4))
    return torch.export.export(model, (torch.ones(1, 4),))  # TE010


def export_ok():
    model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5))
    model.eval()
    return torch.jit.trace(model, torch.ones(1, 4))


def export_onnx_default():
    model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5))
    torch.onnx.export(model, torch.ones(1, 4), "m.onnx")  # eval by default


def export_onnx_training():
    model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5))
    torch.onnx.export(model, torch.ones(1, 4), "m.onnx", training=torch.onnx.TrainingMode.TRAINING)  # TE010


def script_ok():
    model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5))
    return torch.jit.script(model)  # scripting keeps self.training as a live attribute


def export_unknown(model):
    return torch.jit.trace(model, torch.ones(1, 4))  # nobody calls this: the mode is unknown
