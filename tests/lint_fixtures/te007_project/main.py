import torch.nn as nn

from helpers import pipeline


def build():
    return nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5))


def evaluate_checkpoint(batch):
    model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5))
    model.eval()  # set two files away from the forward: fine
    return pipeline.score(model, batch)


def evaluate_forgetting(batch):
    model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5))
    return pipeline.score_unsafe(model, batch)
