def forward(self, x)  # TE099
    return x
