import copy

import torch
import torch.nn as nn
from transformers import AutoModel


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.drop = nn.Dropout(0.5)

    def forward(self, x):
        return self.drop(self.fc(x))


def script():
    model = Net()
    model.load_state_dict(torch.load("ckpt.pt"))
    with torch.no_grad():
        y = model(torch.ones(1, 4))  # TE007
    return y


def after_load_only():
    net = Net()
    net.load_state_dict(torch.load("ckpt.pt"))
    return net(torch.ones(1, 4))  # TE007


def eval_first():
    model = Net()
    model.load_state_dict(torch.load("ckpt.pt"))
    model.eval()
    with torch.no_grad():
        return model(torch.ones(1, 4))


def eval_chained():
    model = Net().eval()
    with torch.inference_mode():
        return model(torch.ones(1, 4))


def train_then_no_grad():
    model = Net()
    model.train()
    with torch.no_grad():
        return model.forward(torch.ones(1, 4))  # TE007


def pretrained():
    model = AutoModel.from_pretrained("bert-base-uncased")  # from_pretrained returns eval mode
    with torch.no_grad():
        return model.generate(torch.ones(1, 4))


def te_context():
    import traineval as te

    model = Net()
    with te.inference(model):
        return model(torch.ones(1, 4))


def ema_update(model, ema):
    with torch.no_grad():  # EMA update: no forward at all
        for e, p in zip(ema.parameters(), model.parameters()):
            e.mul_(0.99).add_(p, alpha=0.01)


def resume_training(loader, opt):
    model = Net()
    model.load_state_dict(torch.load("ckpt.pt"))  # resuming training: forward then backward
    for x in loader:
        model(x).sum().backward()
        opt.step()


def copy_of_eval_model():
    model = Net()
    model.eval()
    shadow = copy.deepcopy(model)
    with torch.no_grad():
        return shadow(torch.ones(1, 4))


@torch.no_grad()
def decorated():
    model = Net()
    return model(torch.ones(1, 4))  # TE007


def predict(model, x):
    with torch.no_grad():
        return model(x)  # TE007


def caller_in_train_mode():
    m = Net()
    m.train()
    return predict(m, torch.ones(1, 4))


def not_a_model(x):
    fn = torch.sigmoid
    with torch.no_grad():
        return fn(x)


def loss_under_no_grad():
    criterion = nn.CrossEntropyLoss()
    with torch.no_grad():
        return criterion(torch.ones(2, 3), torch.tensor([0, 1]))


def plain_linear_after_load():
    head = nn.Linear(4, 2)
    head.load_state_dict(torch.load("head.pt"))
    with torch.no_grad():
        return head(torch.ones(1, 4))

