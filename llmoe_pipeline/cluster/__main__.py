import sys

from llmoe_pipeline.cluster.cli import main

sys.exit(main())
