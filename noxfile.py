"""Test sessions per framework, the cross-framework parity session and lint.

Each session installs torch==2.13.0 first where it needs torch (a bare requirement can pull a CUDA build).
"""

import nox

nox.options.default_venv_backend = "venv"

TORCH = "torch==2.13.0"


def _install(session, extras):
    session.install(TORCH)
    session.install("-e", f".[{extras}]", "transformers==4.57.6", "pytest", "pytest-xdist", "build")


@nox.session(name="tests-torch")
def tests_torch(session):
    _install(session, "torch")
    session.run("pytest", "-q", "-m", "not tf and not flax and not parity", *session.posargs)


@nox.session(name="tests-tf")
def tests_tf(session):
    _install(session, "torch,tf")
    session.run("pytest", "-q", "-m", "tf", *session.posargs)


@nox.session(name="tests-flax")
def tests_flax(session):
    _install(session, "torch,flax")
    session.run("pytest", "-q", "-m", "flax", *session.posargs)


@nox.session
def parity(session):
    _install(session, "all")
    session.run("pytest", "-q", "-m", "parity", *session.posargs)


@nox.session
def lint(session):
    session.install("ruff")
    session.run("ruff", "check", "common", "conversion", "generation", "roberta", "bart", "opt", "ibert", "rosettazoo",
                "tests", "benchmarks", "examples")
