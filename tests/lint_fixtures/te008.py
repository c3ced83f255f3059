import torch
import torch.nn as nn


def validate(model, loader):
    model.eval()
    with torch.no_grad():
        return sum(model(x).sum() for x in loader)


def validate_and_restore(model, loader):
    model.eval()
    with torch.no_grad():
        out = [model(x) for x in loader]
    model.train()
    return out


def evaluate_deep(model, loader):
    return validate(model, loader)


def train_bug(model, loader, opt, epochs):
    model.train()
    for _epoch in range(epochs):
        for x in loader:
            opt.zero_grad()
            model(x).sum().backward()
            opt.step()
        validate(model, loader)  # TE008


def train_bug_deep(model, loader, opt, epochs):
    model.train()
    for _epoch in range(epochs):
        for x in loader:
            model(x).sum().backward()
            opt.step()
        evaluate_deep(model, loader)  # TE008


def train_bug_direct(model, loader, opt):
    for i, x in enumerate(loader):
        model(x).sum().backward()
        opt.step()
        if i % 100 == 0:
            model.eval()  # TE008
            with torch.no_grad():
                model(x)


def train_ok(model, loader, opt, epochs):
    for _epoch in range(epochs):
        model.train()
        for x in loader:
            model(x).sum().backward()
            opt.step()
        validate(model, loader)


def train_ok_restore(model, loader, opt, epochs):
    model.train()
    for _epoch in range(epochs):
        for x in loader:
            model(x).sum().backward()
            opt.step()
        validate_and_restore(model, loader)


def train_ok_te(model, loader, opt, epochs):
    import traineval as te

    for _epoch in range(epochs):
        for x in loader:
            model(x).sum().backward()
            opt.step()
        with te.evaluating(model):
            validate(model, loader)


def distill(student, teacher, loader, opt):
    student.train()
    for x in loader:
        teacher.eval()  # the teacher is never trained: eval in the loop is fine
        with torch.no_grad():
            target = teacher(x)
        (student(x) - target).pow(2).sum().backward()
        opt.step()


class Trainer:
    def __init__(self, model: nn.Module, opt):
        self.model = model
        self.opt = opt

    def fit(self, loader, epochs):
        self.model.train()
        for _ in range(epochs):
            for x in loader:
                self.model(x).sum().backward()
                self.opt.step()
            self.validate(loader)  # TE008

    def validate(self, loader):
        self.model.eval()
        with torch.no_grad():
            return [self.model(x) for x in loader]


def train_ok_chained(model, loader, opt, epochs, device):
    for _ in range(epochs):
        for x, y in loader:
            opt.zero_grad()
            model(x).sum().backward()
            opt.step()
        model.eval().cpu()
        with torch.no_grad():
            model(x)
        model.to(device).train()
