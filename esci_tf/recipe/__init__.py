"""The paper's multi-stage recipe (folds, self-distillation, pseudo labels, a weighted ensemble)
as library code: `run_recipe(RecipeConfig)`, which `python -m trainers.recipe` runs."""
