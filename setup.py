from setuptools import find_packages, setup

setup(
    name="greenpoint",
    version="0.1.0",
    description="Twisted's endpoint strings and protocols on gevent, with happy eyeballs and safe TLS.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["greenpoint", "greenpoint.*"]),
    python_requires=">=3.10",
    install_requires=[
        "gevent>=23.9",
        "pyOpenSSL>=23.2",
        "service-identity>=23.1",
    ],
    extras_require={
        "test": [
            "pytest>=7.4",
            "pytest-timeout>=2.1",
            "trustme>=1.1",
            "hypothesis>=6.80",
            # A test-only dependency: ported Twisted protocols run over greenpoint.
            "twisted>=23.8",
        ],
        "lint": ["ruff>=0.4"],
    },
    entry_points={
        "console_scripts": ["greenpoint = greenpoint.__main__:main"],
    },
)
