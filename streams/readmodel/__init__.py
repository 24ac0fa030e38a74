"""The Redis read model: ``writer`` projects the workers' customers into it, ``reader`` answers the CLI (and any
reader) from it, ``retry`` keeps calls going while Redis is away. Imports the foundation only."""
