import greenpoint


def test_exports_are_exactly_all():
    public = {name for name in vars(greenpoint) if not name.startswith("_")}
    # submodules that importing (or using TLS: greenpoint.tls) brings in as attributes
    modules = {"endpoints", "errors", "tls"}
    assert public - modules - set(greenpoint.__all__) == set()
    assert set(greenpoint.__all__) <= public
