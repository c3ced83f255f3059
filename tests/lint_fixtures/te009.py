import torch


def evaluate(model, loader):
    model.train()  # TE009
    with torch.no_grad():
        return [model(x) for x in loader]


def run(model, loader):
    with torch.no_grad():
        model.train()  # TE009
        return [model(x) for x in loader]


def validate(model, loader):
    model.eval()
    with torch.no_grad():
        out = [model(x) for x in loader]
    model.train()  # restoring after the evaluation: fine
    return out


def mc_dropout_predict(model, x, n=10):
    model.train()  # Monte-Carlo dropout on purpose
    with torch.no_grad():
        return [model(x) for _ in range(n)]


def evaluate_restore(model, loader):
    was_training = model.training
    model.eval()
    with torch.no_grad():
        out = [model(x) for x in loader]
    model.train(was_training)
    return out


def test_train_mode(model, x):
    model.train()  # a pytest test of training mode, not an evaluation routine
    assert model(x) is not None
