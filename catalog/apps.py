from django.apps import AppConfig


class CatalogConfig(AppConfig):
    name = "catalog"
    verbose_name = "Catalog"

    def ready(self) -> None:
        from django.db.models.signals import m2m_changed, post_delete, post_save

        from catalog import selectors
        from catalog.models import Movie
        from catalog.selectors import movie_card_cache
        from learning.ports import catalog_register

        catalog_register(selectors)  # what learning reads of the catalog

        # the per-process movie-card cache drops everything on any change
        clear = movie_card_cache.clear
        post_save.connect(clear, sender=Movie, dispatch_uid="catalog-cards-save")
        post_delete.connect(clear, sender=Movie, dispatch_uid="catalog-cards-delete")
        m2m_changed.connect(
            clear, sender=Movie.genres.through, dispatch_uid="catalog-cards-genres"
        )
