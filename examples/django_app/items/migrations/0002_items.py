"""Fill the items table: ids 1 to 1000, named ``item <id>``."""

from typing import Any

from django.db import migrations


def add_items(apps: Any, schema_editor: Any) -> None:
    """Create items 1 to 1000."""
    item = apps.get_model("items", "Item")
    db = schema_editor.connection.alias
    item.objects.using(db).bulk_create(item(id=i, name=f"item {i}") for i in range(1, 1001))


def remove_items(apps: Any, schema_editor: Any) -> None:
    """Delete them again."""
    apps.get_model("items", "Item").objects.using(schema_editor.connection.alias).delete()


class Migration(migrations.Migration):
    dependencies = (("items", "0001_initial"),)
    operations = (migrations.RunPython(add_items, remove_items),)
