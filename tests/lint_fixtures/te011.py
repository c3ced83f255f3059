import torch.nn as nn

import traineval as te


class Backbone(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.bn = nn.BatchNorm2d(8)


class Classifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = Backbone()
        self.head = nn.Linear(8, 2)


def finetune(loader, opt):
    model = Classifier()
    model.backbone.requires_grad_(False)  # TE011
    model.train()
    for x in loader:
        model(x).sum().backward()
        opt.step()


def finetune_loop_params(loader, opt):
    model = Classifier()
    for p in model.backbone.parameters():
        p.requires_grad = False  # TE011
    for x in loader:
        model(x).sum().backward()
        opt.step()


def finetune_ok(loader, opt):
    model = Classifier()
    model.backbone.requires_grad_(False)
    te.freeze_batchnorm(model.backbone)
    model.train()
    for x in loader:
        model(x).sum().backward()
        opt.step()


def finetune_ok_eval(loader, opt):
    model = Classifier()
    model.backbone.requires_grad_(False)
    model.train()
    model.backbone.eval()
    for x in loader:
        model(x).sum().backward()
        opt.step()


def freeze_head_only(loader, opt):
    model = Classifier()
    model.head.requires_grad_(False)  # a Linear: no statistics to drift
    for x in loader:
        model(x).sum().backward()
        opt.step()


def freeze_for_inference():
    model = Classifier()
    model.requires_grad_(False)  # no training afterwards
    return model
