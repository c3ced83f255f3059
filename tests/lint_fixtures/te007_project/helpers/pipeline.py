from helpers.inference import run_batch, run_batch_unsafe


def score(model, batch):
    return run_batch(model, batch)


def score_unsafe(net, batch):
    return run_batch_unsafe(net, batch)
