import torch

model = torch.nn.Linear(2, 2)
model.eval  # TE001
model.train  # TE001
model.module.eval  # TE001
model.eval()
model.train()
x = model.eval  # assigned, not a statement: a bound method kept on purpose
callbacks = [model.eval, model.train]
print(model.eval)
