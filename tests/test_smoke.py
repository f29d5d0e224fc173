import greenpoint


def test_exports_are_exactly_all():
    public = {name for name in vars(greenpoint) if not name.startswith("_")}
    modules = {
        "endpoints",
        "errors",
        "testing",
    }  # submodules that importing brings in as attributes
    assert public - modules - set(greenpoint.__all__) == set()
    assert set(greenpoint.__all__) <= public
