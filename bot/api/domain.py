"""The one place the API imports the product's use cases from (bot.usecases today; bot.app
after the restructuring), so the move touches one line."""

from bot.usecases import (
    Context,
    UserError,
    clean_dims,
    find_metric,
    open_context,
    parse_value,
    report,
)

__all__ = ["Context", "UserError", "clean_dims", "find_metric", "open_context", "parse_value",
           "report"]
