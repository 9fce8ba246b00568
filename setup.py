"""Build the WSOL contour kernel; the package metadata lives in pyproject.toml."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "lightning_cam.functional._wsol_kernel",
            sources=["lightning_cam/functional/_wsol_kernel.c"],
            extra_compile_args=["-O3", "-std=c11", "-ffp-contract=off"],
        )
    ]
)
