from django.contrib import admin

from catalog.models import Collection, Credit, Genre, Keyword, Movie, Person


class CreditInline(admin.TabularInline):
    model = Credit
    extra = 0
    autocomplete_fields = ("person",)
    fields = ("person", "role", "order", "character")


@admin.register(Movie)
class MovieAdmin(admin.ModelAdmin):
    list_display = (
        "title",
        "year",
        "rating_count",
        "rating_mean",
        "movielens_id",
        "ml100k_id",
        "tmdb_id",
    )
    list_filter = ("genres",)
    search_fields = ("title", "original_title", "=tmdb_id", "=movielens_id", "imdb_id")
    autocomplete_fields = ("collection", "keywords")
    filter_horizontal = ("genres",)
    readonly_fields = (
        "rating_count",
        "rating_mean",
        "match_key",
        "created_at",
        "updated_at",
    )
    inlines = [CreditInline]


@admin.register(Genre)
class GenreAdmin(admin.ModelAdmin):
    list_display = ("name", "slug")
    search_fields = ("name",)
    prepopulated_fields = {"slug": ("name",)}


@admin.register(Keyword)
class KeywordAdmin(admin.ModelAdmin):
    search_fields = ("name",)


@admin.register(Person)
class PersonAdmin(admin.ModelAdmin):
    list_display = ("name", "tmdb_id")
    search_fields = ("name",)


@admin.register(Collection)
class CollectionAdmin(admin.ModelAdmin):
    list_display = ("name", "tmdb_id")
    search_fields = ("name",)
