import torchvision


def finetune(loader, opt, encoder_factory):
    model = encoder_factory()
    model.encoder.requires_grad_(False)  # TE082
    for x in loader:
        model(x).sum().backward()
        opt.step()


def finetune_resnet(loader, opt):
    model = torchvision.models.resnet18()
    model.requires_grad_(False)  # TE011
    model.fc.requires_grad_(True)
    for x in loader:
        model(x).sum().backward()
        opt.step()
