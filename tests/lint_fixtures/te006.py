import torch.nn as nn

model = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5))
model.training = False  # TE006
model[1].training = True


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.training = False  # TE006

    def train(self, mode=True):
        self.training = mode
        for m in self.children():
            m.train(mode)
        return self


def set_bn_eval(m):
    m.training = False


model.apply(set_bn_eval)
for m in model.modules():
    m.training = False
saved = [(m, m.training) for m in model.modules()]
for m, flag in saved:
    m.training = flag
args = object()
args.training = True
trainer = object()
trainer.training = True


def freeze_bn(net):
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.training = False
